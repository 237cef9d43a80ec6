"""Signed hub requests for the small HTTP calls that are not batches (config fetch, bundle refresh).

Batches carry their own signature (docs/protocol.md). Other hub -> cloud requests are
signed the same way with the hub's current Ed25519 key, in four headers:

| header | value |
|---|---|
| ``X-Mchub-Hub`` | hub id |
| ``X-Mchub-Key`` | hex key id (first 8 bytes of SHA-256 of the raw public key) |
| ``X-Mchub-Time`` | ms since 1970-01-01 UTC, hub clock |
| ``X-Mchub-Signature`` | base64 Ed25519 over :func:`request_message` |

The cloud resolves the key with :func:`provisioning.hubs.signer_key` (so a revoked hub,
or a key retired after rotation, is refused exactly as for batches) and accepts clock
skew up to :data:`MAX_SKEW_MS`. These requests are reads or idempotent, so a replay
inside the window gains nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from protocol.keys import signing_key_id
from provisioning.errors import ProvisioningError, RequestError
from provisioning.hubs import signer_key
from provisioning.stores import HubRecord

MAX_SKEW_MS = 5 * 60_000


class BadHubSignature(ProvisioningError):
    """A hub request's signature headers are missing, stale or do not verify."""

    reason = "bad_signature"
    status = 401


def request_message(method: str, path: str, hub_id: str, at_ms: int, body: bytes) -> bytes:
    """The bytes a hub signs for one request."""
    head = f"mchub/hub-request/v1\x00{method.upper()}\x00{path}\x00{hub_id}\x00{at_ms}\x00"
    return head.encode() + hashlib.sha256(body).digest()


def sign_request(
    key: ed25519.Ed25519PrivateKey, *, hub_id: str, method: str, path: str, body: bytes, now_ms: int
) -> dict[str, str]:
    """Headers to add to a hub request."""
    return {
        "X-Mchub-Hub": hub_id,
        "X-Mchub-Key": signing_key_id(key.public_key()).hex(),
        "X-Mchub-Time": str(now_ms),
        "X-Mchub-Signature": base64.b64encode(key.sign(request_message(method, path, hub_id, now_ms, body))).decode(),
    }


@dataclass(frozen=True)
class SignedRequest:
    """The claimed identity in a request's headers, before the key is looked up."""

    hub_id: str
    key_id: bytes
    at_ms: int
    signature: bytes


def parse_headers(headers: Mapping[str, str]) -> SignedRequest:
    """Read the four headers (case-insensitive mapping, as Starlette and aiohttp give)."""
    try:
        return SignedRequest(
            hub_id=headers["x-mchub-hub"],
            key_id=bytes.fromhex(headers["x-mchub-key"]),
            at_ms=int(headers["x-mchub-time"]),
            signature=base64.b64decode(headers["x-mchub-signature"], validate=True),
        )
    except (KeyError, ValueError, binascii.Error) as exc:
        raise RequestError("hub request lacks valid X-Mchub-Hub/Key/Time/Signature headers") from exc


def verify_request(
    signed: SignedRequest, hub: HubRecord | None, *, method: str, path: str, body: bytes, now_ms: int
) -> HubRecord:
    """Check a hub request; returns the hub. Raises UnknownHub, HubRevoked, UnknownKey or BadHubSignature."""
    if hub is not None and hub.hub_id != signed.hub_id:
        raise BadHubSignature("the hub looked up is not the one the request names")
    key = signer_key(hub, signed.key_id, now_ms)
    assert hub is not None
    if abs(now_ms - signed.at_ms) > MAX_SKEW_MS:
        raise BadHubSignature("hub clock differs from the cloud's by more than 5 minutes; fix NTP on the hub")
    try:
        key.verify(signed.signature, request_message(method, path, signed.hub_id, signed.at_ms, body))
    except InvalidSignature:
        raise BadHubSignature("hub request signature does not verify") from None
    return hub
