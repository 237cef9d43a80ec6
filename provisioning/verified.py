"""What the hub's certificates were verified to say, kept beside them (``verified.json``).

Reading ``hub.pem`` and ``ca.cert.pem`` needs cryptography's X.509 modules (with the
``email`` package behind them), and a process that imports them keeps them for as long as it
runs: 1.1 MB of a hub's resident memory (issue 21: the daemon's modules with its MQTT client,
in a fresh interpreter after ``malloc_trim``, 42.8 MB with X.509 against 41.7 MB without).
A hub runs for months and needs only three facts from its certificates: when the hub
certificate's validity starts and ends, and the fleet CA's public key (with its fingerprint)
to check the cloud's key bundle. So whoever verifies the two files with X.509 (enrollment,
rotation, or a start that finds no ``verified.json``) writes these facts here, together with the
SHA-256 of each file as it was verified. A start reads the facts only while both digests
still match; any change to either file means a full verification again. ``verified.json``
sits in the same 0700 state directory as the hub's private key, so whoever could alter it
could replace the key itself.

Pure: no X.509 here, and nothing that imports it.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import msgspec

VERIFIED = "verified.json"
ROTATE_THRESHOLD = 1 / 3  #: rotate when less than this part of the certificate's life remains


class FleetCaKey(msgspec.Struct, frozen=True):
    """The fleet CA as the cloud's key bundle names it."""

    public_raw: bytes  #: the CA's Ed25519 public key, raw (32 bytes)
    fingerprint: str  #: SHA-256 of the CA certificate's DER, hex


class Verified(msgspec.Struct, frozen=True, kw_only=True):
    """``verified.json``: the facts, and the digests of the files they were read from."""

    hub_pem_sha256: str
    ca_pem_sha256: str
    not_before_ms: int  #: the hub certificate's validity
    not_after_ms: int
    ca: FleetCaKey


def digest(data: bytes) -> str:
    """SHA-256 of a state file's bytes, hex."""
    return hashlib.sha256(data).hexdigest()


def read_verified(state_dir: Path, hub_pem: bytes, ca_pem: bytes) -> Verified | None:
    """The kept facts, or None when there are none or either file changed since they were written."""
    try:
        kept = msgspec.json.decode((state_dir / VERIFIED).read_bytes(), type=Verified)
    except (OSError, msgspec.DecodeError):
        return None
    same_hub = hmac.compare_digest(kept.hub_pem_sha256, digest(hub_pem))
    same_ca = hmac.compare_digest(kept.ca_pem_sha256, digest(ca_pem))
    return kept if same_hub and same_ca else None


def should_rotate(not_before_ms: int, not_after_ms: int, now_ms: int, *, commanded: bool = False,
                  threshold: float = ROTATE_THRESHOLD) -> bool:
    """True when commanded, or when less than ``threshold`` of the certificate's life remains."""
    return commanded or (not_after_ms - now_ms) < threshold * (not_after_ms - not_before_ms)
