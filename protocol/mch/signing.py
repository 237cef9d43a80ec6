"""Request signing for MCH platform APIs (app key, timestamp, nonce, HMAC).

Such platforms commonly authenticate a client by an HMAC over a canonical string; the
exact canonical form of one city's platform is not public, so this is our reference
profile, documented here and used by both our uploader and our platform simulator:

    canonical = METHOD "\\n" PATH "\\n" TIMESTAMP "\\n" NONCE "\\n" hex(SHA-256(body))
    signature = hex(HMAC(secret, canonical))      HMAC-SHA256 or HMAC-SM3 (GB/T 32905)

Headers: ``X-App-Key``, ``X-Timestamp`` (ms since 1970-01-01 UTC), ``X-Nonce`` (random,
single use), ``X-Signature-Method`` (``HMAC-SHA256`` | ``HMAC-SM3``), ``X-Signature``.
A receiver rejects timestamps outside a window (default 300 s) and reused nonces.
"""

from __future__ import annotations

import hashlib
import hmac as std_hmac
import secrets
from collections.abc import Mapping
from typing import Literal

from cryptography.hazmat.primitives import hashes, hmac

from protocol.errors import ProtocolError

Method = Literal["HMAC-SHA256", "HMAC-SM3"]


class SignatureError(ProtocolError):
    """A signed request is missing a header, stale, or its signature does not match."""


def canonical(method: str, path: str, timestamp_ms: int, nonce: str, body: bytes) -> bytes:
    """The string that is signed."""
    return f"{method.upper()}\n{path}\n{timestamp_ms}\n{nonce}\n{hashlib.sha256(body).hexdigest()}".encode()


def mac(secret: bytes, message: bytes, algorithm: Method) -> str:
    """Hex HMAC of ``message`` with the named hash."""
    h = hmac.HMAC(secret, hashes.SM3() if algorithm == "HMAC-SM3" else hashes.SHA256())
    h.update(message)
    return h.finalize().hex()


def sign(
    *, app_key: str, secret: bytes, method: str, path: str, body: bytes, timestamp_ms: int,
    algorithm: Method = "HMAC-SHA256", nonce: str | None = None,
) -> dict[str, str]:
    """Headers to add to a request."""
    nonce = nonce or secrets.token_hex(16)
    return {
        "X-App-Key": app_key, "X-Timestamp": str(timestamp_ms), "X-Nonce": nonce,
        "X-Signature-Method": algorithm,
        "X-Signature": mac(secret, canonical(method, path, timestamp_ms, nonce, body), algorithm),
    }


def verify(
    headers: Mapping[str, str], *, secret: bytes, method: str, path: str, body: bytes, now_ms: int,
    window_ms: int = 300_000,
) -> str:
    """Check a signed request; returns its nonce (the caller refuses a nonce seen before)."""
    try:
        timestamp = int(headers["X-Timestamp"])
        nonce, given = headers["X-Nonce"], headers["X-Signature"]
        algorithm = headers.get("X-Signature-Method", "HMAC-SHA256")
    except (KeyError, ValueError) as exc:
        raise SignatureError(f"missing or malformed signature header: {exc}") from exc
    if algorithm not in ("HMAC-SHA256", "HMAC-SM3"):
        raise SignatureError(f"unsupported signature method {algorithm!r}")
    if abs(now_ms - timestamp) > window_ms:
        raise SignatureError("request timestamp is outside the allowed window")
    expected = mac(secret, canonical(method, path, timestamp, nonce, body), algorithm)  # type: ignore[arg-type]
    if not std_hmac.compare_digest(expected, given):
        raise SignatureError("signature does not match")
    return nonce
