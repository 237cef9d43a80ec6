"""Hub enrollment, both sides: the acceptance list's negative cases and a safe re-run."""

from __future__ import annotations

import msgspec
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from provisioning import mqtt
from provisioning.ca import FleetCA, certificate_pem
from provisioning.enrollment import (
    EnrollRequest,
    EnrollResponse,
    accept_response,
    build_csr,
    build_request,
    process_enrollment,
    proof_message,
)
from provisioning.errors import (
    CertificateExpired,
    CsrInvalid,
    CsrMismatch,
    HubRevoked,
    RequestError,
    ResponseError,
    TokenExpired,
    TokenMalformed,
    TokenUnknown,
    TokenUsed,
    TokenWrongSerial,
    TokenWrongSite,
)
from provisioning.hubs import revoke_hub
from provisioning.tokens import parse_token
from tests.provisioning.conftest import DAY, HOUR, NOW, Cloud


async def test_enrollment_issues_everything_the_hub_needs(cloud: Cloud) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    token = await cloud.token()
    response = await cloud.enroll(key, token)
    wire = msgspec.json.decode(msgspec.json.encode(response), type=EnrollResponse)  # survives JSON
    got = accept_response(wire, key, token, now_ms=NOW)
    assert got.identity.hub_id == "dongcheng-h01" and got.identity.site_id == "dongcheng"
    assert got.cloud.signing_key == cloud.signing_key.public_key()
    assert {r.raw for r in got.cloud.recipients} == {r.public().raw for r in cloud.recipients.values()}
    assert got.config.site_name == "东城社区卫生服务中心" and got.config.stations == ()
    assert got.mqtt.username == "dongcheng-h01" and got.mqtt.topic_prefix == "mchub/hubs/dongcheng-h01"
    hub = await cloud.stores.hubs.get("dongcheng-h01")
    assert hub is not None and hub.serial == "PI-0001" and hub.status == "active"
    assert hub.mqtt_password_hash and mqtt.verify_password(got.mqtt.password, hub.mqtt_password_hash)
    assert got.mqtt.password not in repr(hub)  # stored hashed only
    assert cloud.audit.actions()[-1] == "hub.enroll"
    second = await cloud.enroll(ed25519.Ed25519PrivateKey.generate(), await cloud.token(), serial="PI-0002")
    assert second.hub_id == "dongcheng-h02"


async def test_rerun_with_same_key_and_token_is_safe(cloud: Cloud) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    token = await cloud.token()
    first = await cloud.enroll(key, token)
    again = await cloud.enroll(key, token, now=NOW + 2 * DAY)  # even after the token expired
    assert again.repeated and not first.repeated
    assert (again.hub_id, again.certificate_pem) == (first.hub_id, first.certificate_pem)
    hub = await cloud.stores.hubs.get(first.hub_id)
    assert hub is not None and mqtt.verify_password(again.mqtt.password, hub.mqtt_password_hash or "")
    assert not mqtt.verify_password(first.mqtt.password, hub.mqtt_password_hash or "")  # old answer superseded
    accept_response(again, key, token, now_ms=NOW + 2 * DAY)
    assert len(await cloud.stores.hubs.list()) == 1
    assert cloud.audit.actions()[-2:] == ["hub.enroll", "hub.enroll.repeat"]


async def test_reused_token_with_another_key_is_refused(cloud: Cloud) -> None:
    token = await cloud.token()
    await cloud.enroll(ed25519.Ed25519PrivateKey.generate(), token)
    with pytest.raises(TokenUsed, match="already used to enroll hub dongcheng-h01"):
        await cloud.enroll(ed25519.Ed25519PrivateKey.generate(), token)


async def test_expired_token(cloud: Cloud) -> None:
    token = await cloud.token(lifetime=HOUR)
    with pytest.raises(TokenExpired, match="expired"):
        await cloud.enroll(ed25519.Ed25519PrivateKey.generate(), token, now=NOW + HOUR)
    assert await cloud.stores.hubs.list() == []


async def test_token_for_another_site(cloud: Cloud) -> None:
    token = await cloud.token("xicheng")
    with pytest.raises(TokenWrongSite, match="xicheng"):
        await cloud.enroll(ed25519.Ed25519PrivateKey.generate(), token, site="dongcheng")
    ok = await cloud.enroll(ed25519.Ed25519PrivateKey.generate(), token, site="xicheng")
    assert ok.hub_id == "xicheng-h01"


async def test_token_bound_to_another_serial(cloud: Cloud) -> None:
    token = await cloud.token(serial="PI-0007")
    with pytest.raises(TokenWrongSerial):
        await cloud.enroll(ed25519.Ed25519PrivateKey.generate(), token, serial="PI-0008")


async def test_unknown_and_mistyped_tokens(cloud: Cloud) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    from provisioning.tokens import new_token

    with pytest.raises(TokenUnknown):
        await cloud.enroll(key, new_token().text)
    with pytest.raises(TokenMalformed):
        build_request(key, "ABCDE-FGHJK", "PI-1")


def _request(key: ed25519.Ed25519PrivateKey, token: str, csr_pem: str, proof_key: ed25519.Ed25519PrivateKey,
             csr_der: bytes) -> EnrollRequest:
    proof = proof_key.sign(proof_message(parse_token(token).token_id, "PI-0001", csr_der))
    return EnrollRequest(token=token, hub_serial="PI-0001", csr_pem=csr_pem, proof=proof)


async def test_csr_with_a_mismatched_key(cloud: Cloud) -> None:
    token = await cloud.token()
    key, other = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    csr = build_csr(key, "PI-0001")
    der = csr.public_bytes(serialization.Encoding.DER)
    # 1. proof of possession made by another key than the CSR's
    with pytest.raises(CsrMismatch, match="proof of possession"):
        await process_enrollment(_request(key, token, csr.public_bytes(serialization.Encoding.PEM).decode(), other,
                                          der), cloud.stores, cloud.authority, now_ms=NOW)
    # 2. the CSR's key swapped for another one after signing: its self-signature no longer matches
    swapped = der.replace(key.public_key().public_bytes_raw(), other.public_key().public_bytes_raw())
    pem = x509.load_der_x509_csr(swapped).public_bytes(serialization.Encoding.PEM).decode()
    with pytest.raises(CsrMismatch, match="not signed by the key it contains"):
        await process_enrollment(_request(other, token, pem, other, swapped), cloud.stores, cloud.authority,
                                 now_ms=NOW)
    assert await cloud.stores.hubs.list() == []  # and the token is still unused
    assert (await cloud.enroll(key, token)).hub_id == "dongcheng-h01"


async def test_csr_with_a_non_ed25519_key_or_garbage(cloud: Cloud) -> None:
    token = await cloud.token()
    ec_key = ec.generate_private_key(ec.SECP256R1())
    from cryptography.hazmat.primitives import hashes

    csr = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
           "x")])).sign(ec_key, hashes.SHA256()))
    request = EnrollRequest(token=token, hub_serial="PI-0001", proof=b"x" * 64,
                            csr_pem=csr.public_bytes(serialization.Encoding.PEM).decode())
    with pytest.raises(CsrInvalid, match="Ed25519"):
        await process_enrollment(request, cloud.stores, cloud.authority, now_ms=NOW)
    with pytest.raises(CsrInvalid):
        await process_enrollment(msgspec.structs.replace(request, csr_pem="garbage"), cloud.stores, cloud.authority,
                                 now_ms=NOW)
    with pytest.raises(RequestError, match="serial"):
        await process_enrollment(msgspec.structs.replace(request, hub_serial="bad serial/with space"), cloud.stores,
                                 cloud.authority, now_ms=NOW)


async def test_revoked_hub_cannot_rerun_its_enrollment(cloud: Cloud) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    token = await cloud.token()
    first = await cloud.enroll(key, token)
    await revoke_hub(cloud.stores, first.hub_id, actor="alice", reason="stolen", now_ms=NOW + HOUR)
    with pytest.raises(HubRevoked):
        await cloud.enroll(key, token, now=NOW + 2 * HOUR)


async def test_hub_refuses_an_answer_not_bound_to_its_token(cloud: Cloud) -> None:
    """A man in the middle who swaps in his own CA cannot produce the token-keyed binding."""
    key = ed25519.Ed25519PrivateKey.generate()
    token = await cloud.token()
    response = await cloud.enroll(key, token)
    rogue = FleetCA.create("rogue", now_ms=NOW)
    forged = msgspec.structs.replace(response, ca_certificate_pem=certificate_pem(rogue.cert))
    with pytest.raises(ResponseError, match="not bound to this token"):
        accept_response(forged, key, token, now_ms=NOW)
    with pytest.raises(ResponseError, match="not bound"):
        accept_response(response, key, await cloud.token(), now_ms=NOW)  # another token: another binding key


async def test_hub_checks_pin_key_and_chain(cloud: Cloud, fleet_ca: FleetCA) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    token = await cloud.token()
    response = await cloud.enroll(key, token)
    from provisioning.ca import fingerprint

    accept_response(response, key, token, now_ms=NOW, ca_fingerprint=fingerprint(fleet_ca.cert).upper())
    with pytest.raises(ResponseError, match="pinned"):
        accept_response(response, key, token, now_ms=NOW, ca_fingerprint="00" * 32)
    with pytest.raises(ResponseError, match="not for this hub's key"):
        accept_response(response, ed25519.Ed25519PrivateKey.generate(), token, now_ms=NOW)
    with pytest.raises(CertificateExpired):
        accept_response(response, key, token, now_ms=NOW + 31 * DAY)  # the hub clock is far ahead


async def test_two_workers_racing_with_one_token_enroll_one_hub(cloud: Cloud) -> None:
    """Two cloud workers read the unused token at the same time; the conditional mark_used picks one.

    (The loser's partial writes are rolled back by the cloud's transaction; memory stores have none.)
    """
    import asyncio

    from tests.provisioning.memory import MemoryTokens

    class SlowTokens(MemoryTokens):
        async def get(self, token_id: str):  # type: ignore[no-untyped-def]
            row = await super().get(token_id)
            await asyncio.sleep(0)  # let the other worker read the same unused row
            return row

    import dataclasses

    slow = SlowTokens()
    cloud.stores = dataclasses.replace(cloud.stores, tokens=slow)
    token = await cloud.token()
    results = await asyncio.gather(
        cloud.enroll(ed25519.Ed25519PrivateKey.generate(), token, serial="PI-A"),
        cloud.enroll(ed25519.Ed25519PrivateKey.generate(), token, serial="PI-B"),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["EnrollResponse", "TokenUsed"]
    assert (await slow.get(parse_token(token).token_id)).used_by_hub == next(  # type: ignore[union-attr]
        r.hub_id for r in results if isinstance(r, EnrollResponse))


async def test_rerun_after_the_key_was_rotated_away_needs_a_new_token(cloud: Cloud) -> None:
    from provisioning.rotation import build_rotation, process_rotation

    key = ed25519.Ed25519PrivateKey.generate()
    token = await cloud.token()
    first = await cloud.enroll(key, token)
    await process_rotation(build_rotation(first.hub_id, key, ed25519.Ed25519PrivateKey.generate()), cloud.stores,
                           cloud.authority, now_ms=NOW + HOUR)
    assert (await cloud.enroll(key, token, now=NOW + 2 * HOUR)).repeated  # inside the overlap: still its key
    with pytest.raises(TokenUsed, match="rotated"):
        await cloud.enroll(key, token, now=NOW + HOUR + cloud.authority.overlap_ms)
