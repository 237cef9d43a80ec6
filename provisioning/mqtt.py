"""MQTT credentials for hubs, hashed in Mosquitto's own password-file format.

Each hub gets username = its hub id and a random 256-bit password at enrollment. The
cloud stores only the hash, in the ``$7$`` format of ``mosquitto_passwd`` (Mosquitto
>= 2.0: PBKDF2-HMAC-SHA512, 12-byte salt, 64-byte output), so it can write the broker's
``password_file`` directly from its hub table (:func:`password_file`) and reload the
broker; a revoked hub's line disappears, so its next MQTT connection is refused.

Iterations default to Mosquitto's own 101: the password is 256 random bits, so a slow
hash adds nothing against guessing, and the broker hashes on every connection.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable

import msgspec

from provisioning.errors import ProvisioningError

ITERATIONS = 101


class MqttCredentials(msgspec.Struct, frozen=True, kw_only=True):
    """How the hub logs in to the broker (the password is shown to the hub only)."""

    url: str
    username: str
    password: str
    topic_prefix: str


def new_password() -> str:
    """A random MQTT password (43 URL-safe characters, 256 bits)."""
    return secrets.token_urlsafe(32)


def hash_password(password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """``$7$<iterations>$<salt b64>$<hash b64>`` as ``mosquitto_passwd`` writes it."""
    salt = secrets.token_bytes(12) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Check a password against a ``$7$`` hash in constant time."""
    try:
        _, kind, iterations, salt, digest = stored.split("$")
        if kind != "7":
            raise ValueError(kind)
        expected = base64.b64decode(digest, validate=True)
        salt_raw = base64.b64decode(salt, validate=True)
        actual = hashlib.pbkdf2_hmac("sha512", password.encode(), salt_raw, int(iterations))
    except (ValueError, binascii.Error) as exc:
        raise ProvisioningError("stored MQTT password hash is not in mosquitto $7$ format") from exc
    return hmac.compare_digest(actual, expected)


def password_file(entries: Iterable[tuple[str, str]]) -> str:
    """Mosquitto ``password_file`` text from ``(username, $7$ hash)`` pairs."""
    lines = []
    for user, stored in entries:
        if ":" in user or "\n" in user or "\n" in stored:
            raise ProvisioningError(f"MQTT username {user!r} cannot go into a password file")
        lines.append(f"{user}:{stored}\n")
    return "".join(lines)
