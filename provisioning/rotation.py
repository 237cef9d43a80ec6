"""Hub key rotation with an overlap window, so no batch is refused during the switch.

Hub side: :func:`provisioning.verified.should_rotate` says when (a third of the certificate's life left, or the
cloud sent the ``rotate-key`` command); :func:`build_rotation` makes the request — a CSR
for a NEW key generated on the hub, signed by the new key (possession) AND by the
current key (continuity: only the holder of the enrolled key can move the hub to a new
one); :func:`accept_rotation` checks the answer. The hub keeps signing with the old key
until it has the new certificate stored, then switches.

Cloud side: :func:`process_rotation` issues the certificate and schedules the old key's
retirement ``overlap_ms`` later (default 24 h). Until then both keys resolve in
:func:`provisioning.hubs.resolve_signer`, so batches sealed with the old key before the
switch (queued, or in flight on a slow link) are still accepted. A repeated request for
the same new key returns the same certificate.
"""

from __future__ import annotations

import hashlib

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from protocol.keys import signing_key_id
from provisioning.authority import Authority
from provisioning.bundle import SignedBundle
from provisioning.ca import HubIdentity, load_certificate, verify_hub_certificate
from provisioning.enrollment import build_csr, check_csr, new_hub_key
from provisioning.errors import ResponseError, RotationError
from provisioning.hubs import signer_key
from provisioning.inventory import SignedConfig
from provisioning.stores import AuditEntry, Stores

ROTATE_VERSION = 1


class RotateRequest(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /api/v1/rotate`` body."""

    version: int = ROTATE_VERSION
    hub_id: str
    old_key_id: str  #: hex, the key that signs ``continuity``
    csr_pem: str  #: for the new key
    proof: bytes  #: new key's signature over rotation_message(...)
    continuity: bytes  #: old key's signature over the same message


class RotateResponse(msgspec.Struct, frozen=True, kw_only=True):
    """The new certificate and when the old key stops verifying."""

    version: int = ROTATE_VERSION
    hub_id: str
    certificate_pem: str
    old_key_retire_ms: int
    bundle: SignedBundle
    config: SignedConfig


def rotation_message(hub_id: str, old_key_id: str, csr_der: bytes) -> bytes:
    """What both the old and the new key sign."""
    return b"mchub/rotate/v1\x00" + f"{hub_id}\x00{old_key_id}\x00".encode() + hashlib.sha256(csr_der).digest()


def build_rotation(
    hub_id: str, old_key: ed25519.Ed25519PrivateKey, new_key: ed25519.Ed25519PrivateKey
) -> RotateRequest:
    """Hub side: the rotation request for ``new_key`` (generate it with Ed25519PrivateKey.generate())."""
    csr = build_csr(new_key, hub_id)
    old_id = signing_key_id(old_key.public_key()).hex()
    message = rotation_message(hub_id, old_id, csr.public_bytes(serialization.Encoding.DER))
    return RotateRequest(
        hub_id=hub_id, old_key_id=old_id, csr_pem=csr.public_bytes(serialization.Encoding.PEM).decode(),
        proof=new_key.sign(message), continuity=old_key.sign(message),
    )


async def process_rotation(
    request: RotateRequest, stores: Stores, authority: Authority, *, now_ms: int
) -> RotateResponse:
    """Cloud side: accept a rotation (call inside one database transaction)."""
    if request.version != ROTATE_VERSION:
        raise RotationError(f"rotation version {request.version} is not supported")
    hub = await stores.hubs.get(request.hub_id)
    try:
        old_id = bytes.fromhex(request.old_key_id)
    except ValueError as exc:
        raise RotationError("old_key_id is not hex") from exc
    old_public = signer_key(hub, old_id, now_ms)  # UnknownHub / HubRevoked / UnknownKey
    assert hub is not None

    def message(der: bytes) -> bytes:
        return rotation_message(request.hub_id, request.old_key_id, der)

    new_public, csr_der = check_csr(request.csr_pem, request.proof, message)
    try:
        old_public.verify(request.continuity, message(csr_der))
    except InvalidSignature:
        raise RotationError("the rotation is not signed by the hub's current key; refused") from None
    raw = new_public.public_bytes_raw()
    if new_public == old_public:
        raise RotationError("a rotation must introduce a new key; generate one on the hub")
    existing = next((k for k in hub.keys if k.public_raw == raw), None)
    if existing is None:
        cert = authority.ca.issue_hub_certificate(
            new_public, hub_id=hub.hub_id, site_id=hub.site_id, hub_serial=hub.serial, now_ms=now_ms,
            validity_ms=authority.hub_validity_ms,
        )
        existing = new_hub_key(cert, now_ms)
        retire = now_ms + authority.overlap_ms
        keys = tuple(
            k if k.retire_ms is not None and k.retire_ms <= retire else msgspec.structs.replace(k, retire_ms=retire)
            for k in hub.keys
        )
        hub = msgspec.structs.replace(hub, keys=(*keys, existing), last_seen_ms=now_ms)
        await stores.hubs.save(hub)
        await stores.audit.append(AuditEntry(
            at_ms=now_ms, actor=f"hub:{hub.hub_id}", action="hub.rotate", target=hub.hub_id,
            detail={"old_key_id": request.old_key_id, "new_key_id": existing.key_id, "old_retire_ms": str(retire),
                    "cert_serial": existing.cert_serial},
        ))
    old = next(k for k in hub.keys if k.key_id == request.old_key_id)
    return RotateResponse(
        hub_id=hub.hub_id, certificate_pem=existing.cert_pem, old_key_retire_ms=old.retire_ms or now_ms,
        bundle=authority.bundle, config=await authority.config_for(stores, hub, now_ms=now_ms),
    )


def accept_rotation(
    response: RotateResponse, new_key: ed25519.Ed25519PrivateKey, ca_pem: str, *, hub_id: str, now_ms: int
) -> HubIdentity:
    """Hub side: the new certificate must hold the new key, name this hub and chain to the CA."""
    cert = load_certificate(response.certificate_pem)
    identity = verify_hub_certificate(cert, load_certificate(ca_pem), now_ms=now_ms)
    if identity.public_raw != new_key.public_key().public_bytes_raw() or identity.hub_id != hub_id:
        raise ResponseError("the rotated certificate is not for this hub's new key; keep using the old key")
    return identity

