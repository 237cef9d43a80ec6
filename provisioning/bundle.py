"""The CA bundle: the cloud's public keys, signed by the fleet CA.

A hub receives it at enrollment (and again at each rotation or on ``reload-config``) and
trusts it because the CA signed it — the same CA whose certificate the hub pinned at
enrollment. It tells the hub:

* the cloud's HPKE recipient keys, one or more per suite (:class:`protocol.keys.RecipientPublic`);
  the first of a suite is the one to seal to, later ones are still accepted by the cloud
  during a cloud-key rollover;
* the cloud's Ed25519 signing key, which signs acks and MQTT commands;
* the sync protocol versions the cloud speaks (the hub uses the highest it also speaks).

Wire form (JSON): ``{"body": <base64 of JSON BundleBody>, "sig": <base64 Ed25519 by the CA>}``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from protocol.errors import UnknownSuite
from protocol.keys import RecipientPublic, SuiteId, ed25519_raw, load_ed25519_public
from provisioning.errors import BundleError
from provisioning.verified import FleetCaKey

if TYPE_CHECKING:
    from provisioning.ca import FleetCA

BUNDLE_VERSION = 1


class _Recipient(msgspec.Struct, frozen=True):
    suite: str
    key: bytes


class BundleBody(msgspec.Struct, frozen=True, kw_only=True):
    """What the CA vouches for."""

    version: int = BUNDLE_VERSION
    issued_ms: int
    ca_fingerprint: str
    recipients: tuple[_Recipient, ...]
    signing_key: bytes
    protocol_versions: tuple[int, ...] = (1,)


class SignedBundle(msgspec.Struct, frozen=True):
    """The bundle as it travels and is stored on the hub."""

    body: str
    sig: str


@dataclass(frozen=True)
class CloudKeys:
    """The cloud's public keys, as the hub uses them."""

    recipients: tuple[RecipientPublic, ...]
    signing_key: ed25519.Ed25519PublicKey
    protocol_versions: tuple[int, ...] = (1,)

    def recipient(self, suite: SuiteId) -> RecipientPublic:
        """The key to seal batches to with ``suite``."""
        for r in self.recipients:
            if r.suite is suite:
                return r
        raise BundleError(f"the cloud published no key for suite {suite.label}; pick another suite in hub.toml")


def sign_bundle(ca: FleetCA, keys: CloudKeys, *, now_ms: int) -> SignedBundle:
    """Have the CA sign the cloud's current public keys."""
    from provisioning.ca import fingerprint  # X.509: not imported by a hub that only verifies (issue 21)

    if not keys.recipients:
        raise BundleError("a CA bundle needs at least one HPKE recipient key")
    body = BundleBody(
        issued_ms=now_ms,
        ca_fingerprint=fingerprint(ca.cert),
        recipients=tuple(_Recipient(r.suite.label, r.raw) for r in keys.recipients),
        signing_key=ed25519_raw(keys.signing_key),
        protocol_versions=keys.protocol_versions,
    )
    raw = msgspec.json.encode(body)
    return SignedBundle(base64.b64encode(raw).decode(), base64.b64encode(ca.sign(raw)).decode())


def verify_bundle(bundle: SignedBundle, ca: FleetCaKey) -> CloudKeys:
    """Check the CA's signature and decode the keys; raises :class:`BundleError`."""
    try:
        ca_key = ed25519.Ed25519PublicKey.from_public_bytes(ca.public_raw)
    except ValueError as exc:
        raise BundleError("the fleet CA's key is not an Ed25519 key") from exc
    try:
        raw = base64.b64decode(bundle.body, validate=True)
        ca_key.verify(base64.b64decode(bundle.sig, validate=True), raw)
    except (binascii.Error, InvalidSignature) as exc:
        raise BundleError("the CA bundle's signature does not verify with the fleet CA: do not use these keys") from exc
    try:
        body = msgspec.json.decode(raw, type=BundleBody)
        if body.ca_fingerprint != ca.fingerprint:
            raise BundleError("the CA bundle names another fleet CA")
        recipients = tuple(RecipientPublic(SuiteId.from_label(r.suite), r.key) for r in body.recipients)
        for r in recipients:
            r.key()  # wrong lengths fail here, not at the first batch
        signing = load_ed25519_public(body.signing_key)
    except (msgspec.DecodeError, UnknownSuite, ValueError) as exc:
        raise BundleError(f"the CA bundle is malformed: {exc}") from exc
    return CloudKeys(recipients, signing, body.protocol_versions)
