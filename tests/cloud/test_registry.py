"""Hubs registered by hand through the one fleet registry: sites, hubs, key rotation with overlap, errors."""

from __future__ import annotations

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from protocol.ids import now_ms
from protocol.keys import ed25519_raw
from provisioning.errors import Conflict, HubRevoked, NotFound, RequestError
from tests.cloud.support import fleet_on, hub, serving

BATCH = {"Content-Type": "application/vnd.mchub.batch"}


async def test_key_rotation_overlaps_then_the_old_key_is_refused(sqlite_cloud) -> None:
    cfg, keys = sqlite_cloud
    h = hub(keys, "HR")
    old_key = h.key
    async with serving(cfg) as url, aiohttp.ClientSession() as http, fleet_on(cfg, keys) as fleet:
        await fleet.ensure_site("alice", "S1", "城关镇卫生院")
        old_id = await fleet.register_hub("alice", "HR", site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
        new_key = ed25519.Ed25519PrivateKey.generate()
        new_id = await fleet.add_key("alice", "HR", ed25519_raw(new_key.public_key()))
        (info,) = await fleet.hub_infos()
        assert sorted(info.key_ids) == sorted([old_id, new_id])
        h.add_visit()
        async with http.post(f"{url}/api/v1/batches", data=h.seal_from(1), headers=BATCH) as r:
            assert r.status == 200  # old key, during the overlap
        h.key = new_key
        h.add_visit()
        async with http.post(f"{url}/api/v1/batches", data=h.seal_from(7), headers=BATCH) as r:
            assert r.status == 200  # new key
        await fleet.expire_key("alice", "HR", old_id, at_ms=now_ms() - 1)
        h.key = old_key
        h.add_visit()
        async with http.post(f"{url}/api/v1/batches", data=h.seal_from(13), headers=BATCH) as r:
            assert (r.status, (await r.json())["reason"]) == (401, "unknown_key")
        (info,) = await fleet.hub_infos("S1")
        assert info.key_ids == [new_id] and info.acked_through == {h.epoch: 12}
        assert await fleet.hub_infos("elsewhere") == []
        actions = [e.action for e in await fleet.audit("HR") if e.action.startswith("hub.")]
        assert actions == ["hub.register", "hub.key.add", "hub.key.expire"]


async def test_registry_refuses_bad_input_with_clear_errors(sqlite_cloud) -> None:
    cfg, keys = sqlite_cloud
    h = hub(keys, "HX")
    raw = bytes.fromhex(h.public_key_hex)
    async with serving(cfg), fleet_on(cfg, keys) as fleet:
        with pytest.raises(NotFound, match="site 'nope' does not exist"):
            await fleet.register_hub("a", "HX", site_id="nope", public_key=raw)
        assert await fleet.ensure_site("a", "S1") is True
        assert await fleet.ensure_site("a", "S1") is False  # idempotent
        with pytest.raises(RequestError, match="32 bytes"):
            await fleet.register_hub("a", "HX", site_id="S1", public_key=b"short")
        with pytest.raises(RequestError, match="hub id"):
            await fleet.register_hub("a", "bad id!", site_id="S1", public_key=raw)
        await fleet.register_hub("a", "HX", site_id="S1", public_key=raw)
        with pytest.raises(Conflict, match="already registered"):
            await fleet.register_hub("a", "HX", site_id="S1", public_key=raw)
        with pytest.raises(Conflict, match="already has key"):
            await fleet.add_key("a", "HX", raw)
        with pytest.raises(NotFound, match="no hub 'HY'"):
            await fleet.revoke("a", "HY", "x")
        with pytest.raises(RequestError, match="reason"):
            await fleet.revoke("a", "HX", " ")
        await fleet.revoke("a", "HX", "stolen")
        with pytest.raises(HubRevoked):  # a revoked hub gets no new key
            await fleet.add_key("a", "HX", ed25519_raw(ed25519.Ed25519PrivateKey.generate().public_key()))
        (info,) = await fleet.hub_infos()
        assert info.status == "revoked" and info.key_ids == []  # every key retired with the hub
