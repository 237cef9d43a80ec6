"""Key rotation: when to rotate, continuity proof, and the overlap in which both keys verify."""

from __future__ import annotations

import msgspec
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from protocol import envelope
from protocol.keys import SuiteId, signing_key_id
from protocol.model import Observation, Reading
from provisioning.errors import HubRevoked, ResponseError, RotationError, UnknownHub, UnknownKey
from provisioning.hubs import resolve_signer, revoke_hub
from provisioning.rotation import (
    accept_rotation,
    build_rotation,
    process_rotation,
    rotation_message,
)
from provisioning.verified import should_rotate
from tests.provisioning.conftest import DAY, HOUR, NOW, Cloud


def _csr_der(pem: str) -> bytes:
    return x509.load_pem_x509_csr(pem.encode()).public_bytes(serialization.Encoding.DER)


def test_should_rotate_in_the_last_third_or_when_told() -> None:
    start, end = NOW, NOW + 30 * DAY
    assert not should_rotate(start, end, NOW + 19 * DAY)
    assert should_rotate(start, end, NOW + 21 * DAY)
    assert should_rotate(start, end, NOW, commanded=True)
    assert should_rotate(start, end, end + 1)


async def _enrolled(cloud: Cloud) -> tuple[str, ed25519.Ed25519PrivateKey, str]:
    key = ed25519.Ed25519PrivateKey.generate()
    response = await cloud.enroll(key, await cloud.token())
    return response.hub_id, key, response.ca_certificate_pem


def _reading(hub_id: str, seq: int) -> Reading:
    return Reading(hub_id=hub_id, epoch=5, seq=seq, at=NOW + seq, device_id="s1-ble-bp", station_id="1",
                   kind="blood_pressure", observations=(Observation(code="8480-6", value=118.0, unit="mm[Hg]"),))


async def _ingest(cloud: Cloud, batch: bytes, now: int) -> None:
    """What the cloud's ingest does with provisioning: resolve the signer, then open the batch."""
    header = envelope.parse_header(batch)
    signer = await resolve_signer(cloud.stores, header.hub_id, header.signer_key_id, now_ms=now)
    envelope.open_batch(batch, signer=signer, recipients={r.public().key_id: r for r in cloud.recipients.values()})


async def test_rotation_mid_traffic_refuses_no_batch(cloud: Cloud) -> None:
    hub_id, old, ca_pem = await _enrolled(cloud)
    recipient = cloud.recipients[SuiteId.X25519_AES256GCM].public()

    def seal(seq: int, key: ed25519.Ed25519PrivateKey) -> bytes:
        return envelope.seal([_reading(hub_id, seq)], hub_id=hub_id, epoch=5, signer=key, recipient=recipient)

    queued = [seal(s, old) for s in (1, 2, 3)]  # sealed with the old key, not yet sent
    await _ingest(cloud, queued[0], NOW + HOUR)
    new = ed25519.Ed25519PrivateKey.generate()
    at = NOW + 20 * DAY
    response = await process_rotation(build_rotation(hub_id, old, new), cloud.stores, cloud.authority, now_ms=at)
    identity = accept_rotation(response, new, ca_pem, hub_id=hub_id, now_ms=at)
    assert identity.not_after_ms == at + 30 * DAY
    assert response.old_key_retire_ms == at + cloud.authority.overlap_ms
    # the switch: old batches still in flight and new ones interleave, none refused
    await _ingest(cloud, queued[1], at + 1)
    await _ingest(cloud, seal(4, new), at + 2)
    await _ingest(cloud, queued[2], at + cloud.authority.overlap_ms - 1)
    # after the overlap only the new key verifies
    with pytest.raises(UnknownKey):
        await _ingest(cloud, seal(5, old), at + cloud.authority.overlap_ms)
    await _ingest(cloud, seal(5, new), at + cloud.authority.overlap_ms)
    assert cloud.audit.actions()[-1] == "hub.rotate"


async def test_repeated_rotation_request_returns_the_same_certificate(cloud: Cloud) -> None:
    hub_id, old, _ = await _enrolled(cloud)
    new = ed25519.Ed25519PrivateKey.generate()
    request = build_rotation(hub_id, old, new)
    first = await process_rotation(request, cloud.stores, cloud.authority, now_ms=NOW + DAY)
    again = await process_rotation(request, cloud.stores, cloud.authority, now_ms=NOW + DAY + 5000)
    assert first.certificate_pem == again.certificate_pem
    assert first.old_key_retire_ms == again.old_key_retire_ms
    hub = await cloud.stores.hubs.get(hub_id)
    assert hub is not None and len(hub.keys) == 2
    assert cloud.audit.actions().count("hub.rotate") == 1


async def test_rotation_needs_the_current_key(cloud: Cloud) -> None:
    hub_id, old, _ = await _enrolled(cloud)
    stranger = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(UnknownKey):  # signed by a key the hub never had
        await process_rotation(build_rotation(hub_id, stranger, ed25519.Ed25519PrivateKey.generate()),
                               cloud.stores, cloud.authority, now_ms=NOW)
    # naming the right old key id but signing the continuity proof with another key
    new = ed25519.Ed25519PrivateKey.generate()
    honest = build_rotation(hub_id, old, new)
    message = rotation_message(hub_id, honest.old_key_id, _csr_der(honest.csr_pem))
    forged = msgspec.structs.replace(honest, continuity=stranger.sign(message))
    with pytest.raises(RotationError, match="not signed by the hub's current key"):
        await process_rotation(forged, cloud.stores, cloud.authority, now_ms=NOW)
    with pytest.raises(RotationError, match="new key"):
        await process_rotation(build_rotation(hub_id, old, old), cloud.stores, cloud.authority, now_ms=NOW)
    with pytest.raises(UnknownHub):
        await process_rotation(build_rotation("nobody-h01", old, stranger), cloud.stores, cloud.authority, now_ms=NOW)


async def test_a_retired_key_cannot_rotate_again(cloud: Cloud) -> None:
    hub_id, old, _ = await _enrolled(cloud)
    new = ed25519.Ed25519PrivateKey.generate()
    await process_rotation(build_rotation(hub_id, old, new), cloud.stores, cloud.authority, now_ms=NOW)
    later = NOW + cloud.authority.overlap_ms
    with pytest.raises(UnknownKey):
        await process_rotation(build_rotation(hub_id, old, ed25519.Ed25519PrivateKey.generate()), cloud.stores,
                               cloud.authority, now_ms=later)
    newer = ed25519.Ed25519PrivateKey.generate()
    await process_rotation(build_rotation(hub_id, new, newer), cloud.stores, cloud.authority, now_ms=later)


async def test_expired_certificate_key_no_longer_verifies(cloud: Cloud) -> None:
    hub_id, old, _ = await _enrolled(cloud)
    key_id = signing_key_id(old.public_key())
    await resolve_signer(cloud.stores, hub_id, key_id, now_ms=NOW + 30 * DAY)
    with pytest.raises(UnknownKey, match="expired"):
        await resolve_signer(cloud.stores, hub_id, key_id, now_ms=NOW + 30 * DAY + 1)


async def test_revoked_hub_cannot_rotate_or_sign(cloud: Cloud) -> None:
    hub_id, old, _ = await _enrolled(cloud)
    await revoke_hub(cloud.stores, hub_id, actor="alice", reason="clinic closed", now_ms=NOW + 1)
    with pytest.raises(HubRevoked):
        await process_rotation(build_rotation(hub_id, old, ed25519.Ed25519PrivateKey.generate()), cloud.stores,
                               cloud.authority, now_ms=NOW + 2)
    with pytest.raises(HubRevoked):
        await resolve_signer(cloud.stores, hub_id, signing_key_id(old.public_key()), now_ms=NOW + 2)


async def test_hub_refuses_a_rotated_certificate_for_another_key(cloud: Cloud) -> None:
    hub_id, old, ca_pem = await _enrolled(cloud)
    new = ed25519.Ed25519PrivateKey.generate()
    response = await process_rotation(build_rotation(hub_id, old, new), cloud.stores, cloud.authority, now_ms=NOW)
    with pytest.raises(ResponseError):
        accept_rotation(response, old, ca_pem, hub_id=hub_id, now_ms=NOW)
