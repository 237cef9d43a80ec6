"""The hub registry API that provisioning calls: sites, hubs, key rotation with overlap, revocation."""

from __future__ import annotations

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from cloud import registry
from cloud.errors import RegistryError
from protocol.ids import now_ms
from protocol.keys import ed25519_raw
from tests.cloud.support import hub, serving

BATCH = {"Content-Type": "application/vnd.mchub.batch"}


async def test_key_rotation_overlaps_then_the_old_key_is_refused(sqlite_cloud) -> None:
    cfg, keys = sqlite_cloud
    h = hub(keys, "HR")
    old_key = h.key
    async with serving(cfg) as url, aiohttp.ClientSession() as http:
        await registry.create_site("S1", "城关镇卫生院")
        old_id = await registry.register_hub("HR", site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
        new_key = ed25519.Ed25519PrivateKey.generate()
        new_id = await registry.add_key("HR", ed25519_raw(new_key.public_key()))
        (info,) = await registry.list_hubs()
        assert sorted(info.key_ids) == sorted([old_id, new_id])
        h.add_visit()
        async with http.post(f"{url}/api/v1/batches", data=h.seal_from(1), headers=BATCH) as r:
            assert r.status == 200  # old key, during the overlap
        h.key = new_key
        h.add_visit()
        async with http.post(f"{url}/api/v1/batches", data=h.seal_from(7), headers=BATCH) as r:
            assert r.status == 200  # new key
        await registry.expire_key("HR", old_id, at_ms=now_ms() - 1)
        h.key = old_key
        h.add_visit()
        async with http.post(f"{url}/api/v1/batches", data=h.seal_from(13), headers=BATCH) as r:
            assert (r.status, (await r.json())["reason"]) == (401, "unknown_key")
        (info,) = await registry.list_hubs()
        assert info.key_ids == [new_id] and info.acked_through == {h.epoch - (1 << 64) if h.epoch >= 1 << 63
                                                                   else h.epoch: 12}


async def test_registry_refuses_bad_input_with_clear_errors(sqlite_cloud) -> None:
    cfg, keys = sqlite_cloud
    h = hub(keys, "HX")
    async with serving(cfg):
        with pytest.raises(RegistryError, match="site 'nope' does not exist"):
            await registry.register_hub("HX", site_id="nope", public_key=bytes.fromhex(h.public_key_hex))
        await registry.create_site("S1")
        with pytest.raises(RegistryError, match="32 bytes"):
            await registry.register_hub("HX", site_id="S1", public_key=b"short")
        with pytest.raises(RegistryError, match="hub id"):
            await registry.register_hub("bad id!", site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
        await registry.register_hub("HX", site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
        with pytest.raises(RegistryError, match="already registered"):
            await registry.register_hub("HX", site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
        with pytest.raises(RegistryError, match="already has key"):
            await registry.add_key("HX", bytes.fromhex(h.public_key_hex))
        with pytest.raises(RegistryError, match="not registered"):
            await registry.revoke_hub("HY", reason="x")
