"""Hub enrollment: the request a hub sends, the cloud's decision, and the hub's checks.

Flow (``mchub edge enroll --cloud URL --token T``; HTTP in docs/admin-api.md §Enrollment):

1. The hub generates its Ed25519 key locally (never sent anywhere) and builds an
   :class:`EnrollRequest` (:func:`build_request`): a CSR signed by the key, the token,
   its hardware serial, and ``proof`` — a signature by the same key over the token id,
   serial and CSR digest, so a captured request cannot be replayed with another token.
2. The cloud runs :func:`process_enrollment`: checks the CSR and proof, the token
   (one-time, expiry, site, serial), assigns the hub id, issues the certificate, creates
   MQTT credentials, records everything, audits, and answers :class:`EnrollResponse`.
3. The hub runs :func:`accept_response`: the answer must carry ``binding``, an HMAC keyed
   by a hash of the token — only a cloud that holds the token's digest can make it, so a
   man in the middle cannot hand the hub a CA of its own. Then the certificate must hold
   the hub's own key and chain to that CA, and the CA bundle and configuration must verify.

Re-running with the same key and token returns the same hub id and certificate and a
fresh MQTT password (the earlier answer may never have arrived); another key with a used
token is refused with :class:`~provisioning.errors.TokenUsed`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass

import msgspec
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

from protocol.ids import now_ms as _now_ms
from protocol.keys import key_id
from provisioning import mqtt
from provisioning.authority import Authority
from provisioning.bundle import CloudKeys, SignedBundle, verify_bundle
from provisioning.ca import (
    HubIdentity,
    certificate_pem,
    fingerprint,
    fleet_ca_key,
    key_fingerprint,
    load_certificate,
    verify_hub_certificate,
)
from provisioning.errors import (
    Conflict,
    CsrInvalid,
    CsrMismatch,
    HubRevoked,
    NotFound,
    RequestError,
    ResponseError,
    TokenUsed,
)
from provisioning.hubs import current_keys
from provisioning.inventory import HubConfig, SignedConfig, verify_config
from provisioning.mqtt import MqttCredentials
from provisioning.stores import AuditEntry, HubKey, HubRecord, Stores
from provisioning.tokens import ParsedToken, check_token, parse_token

PROTOCOL_VERSION = 1
_SERIAL = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class EnrollRequest(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /api/v1/enroll`` body (JSON; bytes as base64)."""

    version: int = PROTOCOL_VERSION
    token: str
    hub_serial: str
    csr_pem: str
    proof: bytes
    site_id: str | None = None  #: when the installer says which site this is; must match the token
    software: str = ""


class EnrollResponse(msgspec.Struct, frozen=True, kw_only=True):
    """The cloud's answer to a successful enrollment."""

    version: int = PROTOCOL_VERSION
    hub_id: str
    site_id: str
    certificate_pem: str
    ca_certificate_pem: str
    bundle: SignedBundle
    config: SignedConfig
    mqtt: MqttCredentials
    binding: bytes  #: HMAC proving the answer comes from the holder of the token digest
    repeated: bool = False  #: True when this re-answers an earlier enrollment of the same key


def proof_message(token_id: str, hub_serial: str, csr_der: bytes) -> bytes:
    """What the hub key signs to bind its CSR to this token and serial."""
    return b"mchub/enroll/v1\x00" + f"{token_id}\x00{hub_serial}\x00".encode() + hashlib.sha256(csr_der).digest()


def build_csr(key: ed25519.Ed25519PrivateKey, common_name: str) -> x509.CertificateSigningRequest:
    """A CSR for ``key`` (the CA ignores the requested subject and writes its own)."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, None)


def build_request(
    key: ed25519.Ed25519PrivateKey, token_text: str, hub_serial: str, *, site_id: str | None = None, software: str = ""
) -> EnrollRequest:
    """Hub side: the enrollment request (checks the token's format before any network)."""
    token = parse_token(token_text)
    csr = build_csr(key, hub_serial)
    der = csr.public_bytes(serialization.Encoding.DER)
    return EnrollRequest(
        token=token_text, hub_serial=hub_serial, site_id=site_id, software=software,
        csr_pem=csr.public_bytes(serialization.Encoding.PEM).decode(),
        proof=key.sign(proof_message(token.token_id, hub_serial, der)),
    )


def check_csr(
    csr_pem: str, proof: bytes, message: Callable[[bytes], bytes]
) -> tuple[ed25519.Ed25519PublicKey, bytes]:
    """Parse a CSR, check its self-signature and ``proof`` = signature over ``message(csr_der)``.

    Returns the CSR's key and DER. Raises CsrInvalid (unparsable, not Ed25519) or CsrMismatch.
    """
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        key = csr.public_key()
    except (ValueError, TypeError) as exc:
        raise CsrInvalid(f"the certificate request does not parse: {exc}") from exc
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise CsrInvalid(f"the certificate request holds a {type(key).__name__}; hub keys are Ed25519")
    if not csr.is_signature_valid:
        raise CsrMismatch("the certificate request is not signed by the key it contains")
    der = csr.public_bytes(serialization.Encoding.DER)
    try:
        key.verify(proof, message(der))
    except InvalidSignature:
        raise CsrMismatch("the proof of possession is not signed by the key in the certificate request") from None
    return key, der


def _binding(
    token: ParsedToken, hub_id: str, cert_pem: str, ca_pem: str, bundle: SignedBundle, config: SignedConfig
) -> bytes:
    parts = [hub_id, cert_pem, ca_pem, bundle.body, config.body]
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    return hmac.new(token.binding_key, b"mchub/enroll-answer/v1\x00" + digest, "sha256").digest()


async def _allocate_hub(stores: Stores, hub: HubRecord) -> HubRecord:
    """Create the hub as ``<site>-h<NN>`` with the lowest number never used at the site.

    Ids of revoked hubs are not reused. Two enrollments racing at one site may pick the
    same id: the loser's ``create`` raises Conflict, and the cloud retries the request.
    """
    for n in range(1, 1000):
        hub_id = f"{hub.site_id}-h{n:02d}"
        if await stores.hubs.get(hub_id) is None:
            candidate = msgspec.structs.replace(hub, hub_id=hub_id)
            await stores.hubs.create(candidate)
            return candidate
    raise Conflict(f"site {hub.site_id} has 999 hubs; no free hub id")


async def process_enrollment(
    request: EnrollRequest, stores: Stores, authority: Authority, *, now_ms: int
) -> EnrollResponse:
    """Cloud side: decide on an enrollment request (call inside one database transaction)."""
    if request.version != PROTOCOL_VERSION:
        raise RequestError(f"enrollment version {request.version} is not supported (this cloud speaks 1)")
    if not _SERIAL.fullmatch(request.hub_serial):
        raise RequestError("hub serial must be 1-64 of A-Z a-z 0-9 . _ : -")
    token = parse_token(request.token)
    key, _ = check_csr(
        request.csr_pem, request.proof, lambda der: proof_message(token.token_id, request.hub_serial, der)
    )
    raw = key.public_bytes_raw()
    fp = key_fingerprint(raw)
    record = await stores.tokens.get(token.token_id)
    repeated = check_token(
        record, token, now_ms=now_ms, key_fingerprint=fp, site_id=request.site_id, hub_serial=request.hub_serial
    )
    assert record is not None  # check_token raised otherwise
    site = await stores.sites.get(record.site_id)
    if site is None:
        raise NotFound(f"site {record.site_id} of token {record.token_id} no longer exists")
    password = mqtt.new_password()
    if repeated:
        hub = await stores.hubs.get(record.used_by_hub or "")
        if hub is not None and hub.status == "revoked":  # before the key check: revocation retires every key
            raise HubRevoked(f"hub {hub.hub_id} has been revoked; enroll it again with a new token")
        hub_key = next((k for k in current_keys(hub, now_ms) if k.public_raw == raw), None) if hub else None
        if hub is None or hub_key is None:
            raise TokenUsed(f"token {record.token_id} was used; its hub has since rotated this key or let its "
                            "certificate expire: create a new token")
        hub = msgspec.structs.replace(hub, mqtt_password_hash=mqtt.hash_password(password), last_seen_ms=now_ms)
        await stores.hubs.save(hub)
        action = "hub.enroll.repeat"
    else:
        draft = HubRecord(
            hub_id="", site_id=record.site_id, serial=request.hub_serial, enrolled_ms=now_ms,
            mqtt_password_hash=mqtt.hash_password(password), last_seen_ms=now_ms, enroll_token=record.token_id,
        )
        hub = await _allocate_hub(stores, draft)
        cert = authority.ca.issue_hub_certificate(
            key, hub_id=hub.hub_id, site_id=hub.site_id, hub_serial=hub.serial, now_ms=now_ms,
            validity_ms=authority.hub_validity_ms,
        )
        hub_key = new_hub_key(cert, now_ms)
        hub = msgspec.structs.replace(hub, keys=(hub_key,))
        if not await stores.tokens.mark_used(record.token_id, hub.hub_id, fp, now_ms):
            raise TokenUsed(
                f"token {record.token_id} was used a moment ago by another request; re-run to see its result"
            )
        await stores.hubs.save(hub)
        action = "hub.enroll"
    detail = {"site": hub.site_id, "serial": hub.serial, "token": record.token_id, "key_id": hub_key.key_id}
    await stores.audit.append(
        AuditEntry(at_ms=now_ms, actor=f"hub:{hub.hub_id}", action=action, target=hub.hub_id, detail=detail)
    )
    config = await authority.config_for(stores, hub, now_ms=now_ms)
    ca_pem = certificate_pem(authority.ca.cert)
    return EnrollResponse(
        hub_id=hub.hub_id, site_id=hub.site_id, certificate_pem=hub_key.cert_pem, ca_certificate_pem=ca_pem,
        bundle=authority.bundle, config=config,
        mqtt=MqttCredentials(url=authority.mqtt_url, username=hub.hub_id, password=password,
                             topic_prefix=f"mchub/hubs/{hub.hub_id}"),
        binding=_binding(token, hub.hub_id, hub_key.cert_pem, ca_pem, authority.bundle, config),
        repeated=repeated,
    )


def new_hub_key(cert: x509.Certificate, now_ms: int) -> HubKey:
    """The HubKey row for a freshly issued certificate."""
    raw = cert.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return HubKey(
        key_id=key_id(raw).hex(), public_raw=raw, cert_pem=certificate_pem(cert),
        cert_serial=format(cert.serial_number, "x"),
        not_after_ms=int(cert.not_valid_after_utc.timestamp() * 1000), added_ms=now_ms,
    )


@dataclass(frozen=True)
class Enrollment:
    """What a hub keeps after a verified enrollment."""

    identity: HubIdentity
    certificate: x509.Certificate
    ca_certificate: x509.Certificate
    cloud: CloudKeys
    config: HubConfig
    mqtt: MqttCredentials
    response: EnrollResponse


def accept_response(
    response: EnrollResponse,
    key: ed25519.Ed25519PrivateKey,
    token_text: str,
    *,
    now_ms: int | None = None,
    ca_fingerprint: str | None = None,
) -> Enrollment:
    """Hub side: check everything in the cloud's answer before trusting any of it."""
    now = _now_ms() if now_ms is None else now_ms
    token = parse_token(token_text)
    expected = _binding(token, response.hub_id, response.certificate_pem, response.ca_certificate_pem,
                        response.bundle, response.config)
    if not hmac.compare_digest(expected, response.binding):
        raise ResponseError("the enrollment answer is not bound to this token: the server does not know it (wrong URL "
                            "or an interceptor); nothing was saved")
    ca_cert = load_certificate(response.ca_certificate_pem)
    if ca_fingerprint is not None and fingerprint(ca_cert).lower() != ca_fingerprint.lower().replace(":", ""):
        raise ResponseError("the cloud's CA is not the one pinned with --ca-fingerprint; nothing was saved")
    cert = load_certificate(response.certificate_pem)
    identity = verify_hub_certificate(cert, ca_cert, now_ms=now)
    if identity.public_raw != key.public_key().public_bytes_raw() or identity.hub_id != response.hub_id:
        raise ResponseError("the issued certificate is not for this hub's key; nothing was saved")
    cloud = verify_bundle(response.bundle, fleet_ca_key(ca_cert))
    config = verify_config(response.config, cloud.signing_key, response.hub_id)
    return Enrollment(identity, cert, ca_cert, cloud, config, response.mqtt, response)
