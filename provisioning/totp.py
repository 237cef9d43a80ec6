"""RFC 6238 time-based one-time passwords (the admin's second factor).

Defaults are what every authenticator app (Google Authenticator, Microsoft
Authenticator, 阿里云 / 腾讯 身份宝 ...) assumes: HMAC-SHA-1, 30-second steps, 6 digits,
a 160-bit secret shown as base32 or as an ``otpauth://`` QR code (:func:`provisioning_uri`).

:func:`verify` accepts the current step and one step either side (clock drift of up to
30 s between phone and server) and refuses any step at or before ``last_step`` — the
step of the last code accepted for this user — so a code seen over a shoulder or in a
log cannot be replayed, even inside its 90-second window. The caller stores the
returned step with the user.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
import urllib.parse

from provisioning.errors import AuthError, CodeReused, WrongCode

STEP_S = 30
DIGITS = 6
WINDOW = 1
_ALGORITHMS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}


def new_secret() -> str:
    """A random 160-bit secret in base32 (no padding), as authenticator apps expect."""
    return base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")


def decode_secret(secret: str) -> bytes:
    """Base32 secret (spaces, lower case and missing padding tolerated) to bytes."""
    text = secret.replace(" ", "").upper()
    try:
        return base64.b32decode(text + "=" * (-len(text) % 8))
    except binascii.Error as exc:
        raise AuthError("the TOTP secret is not valid base32") from exc


def hotp(key: bytes, counter: int, *, digits: int = DIGITS, algorithm: str = "SHA1") -> str:
    """RFC 4226 HOTP value of ``counter``."""
    mac = hmac.new(key, struct.pack(">Q", counter), _ALGORITHMS[algorithm]).digest()
    offset = mac[-1] & 0x0F
    code = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFF_FFFF
    return str(code % 10**digits).zfill(digits)


def step_at(unix_s: float, step_s: int = STEP_S) -> int:
    """The time step containing ``unix_s``."""
    return int(unix_s // step_s)


def totp(key: bytes, unix_s: float, *, digits: int = DIGITS, algorithm: str = "SHA1", step_s: int = STEP_S) -> str:
    """RFC 6238 TOTP value at ``unix_s``."""
    return hotp(key, step_at(unix_s, step_s), digits=digits, algorithm=algorithm)


def verify(secret: str, code: str, *, unix_s: float, last_step: int | None = None, window: int = WINDOW) -> int:
    """Check ``code``; return its time step (store it as the user's new ``last_step``).

    Raises :class:`~provisioning.errors.WrongCode` for a wrong or malformed code and
    :class:`~provisioning.errors.CodeReused` for a right one already used (both AuthError).
    """
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        raise WrongCode(f"the one-time code has {DIGITS} digits")
    key = decode_secret(secret)
    now = step_at(unix_s)
    for step in range(now - window, now + window + 1):
        if hmac.compare_digest(hotp(key, step), code):
            if last_step is not None and step <= last_step:
                raise CodeReused("this one-time code was already used; wait for the next one")
            return step
    raise WrongCode("wrong one-time code")


def provisioning_uri(secret: str, account: str, issuer: str = "mchub") -> str:
    """``otpauth://totp/...`` for a QR code an authenticator app scans."""
    label = urllib.parse.quote(f"{issuer}:{account}")
    query = urllib.parse.urlencode({"secret": secret, "issuer": issuer, "algorithm": "SHA1",
                                    "digits": DIGITS, "period": STEP_S})
    return f"otpauth://totp/{label}?{query}"
