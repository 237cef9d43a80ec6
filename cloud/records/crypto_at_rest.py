"""Encryption at rest of national ID numbers and names (AES-256-GCM) and the blind index.

A sealed value is ``nonce (12) || ciphertext || tag (16)``; the associated data names the
column (``b"subjects.national_id"``) so a value copied into another column does not open.
The blind index (:func:`protocol.idnum.blind_index`) uses a separate HMAC key, so equal
numbers match without the database ever holding one in the clear.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cloud.errors import CloudError
from protocol import idnum


class AtRestError(CloudError):
    """A sealed column value does not open (wrong key or damaged data)."""


class AtRest:
    """Seal and open personal fields with the configured keys."""

    def __init__(self, encryption_key: bytes, blind_index_key: bytes) -> None:
        if len(encryption_key) != 32 or len(blind_index_key) < 32:
            raise AtRestError("at-rest keys must be 32 bytes (encryption) and >= 32 bytes (blind index)")
        if encryption_key == blind_index_key:
            raise AtRestError("the blind-index key must differ from the encryption key")
        self._aead = AESGCM(encryption_key)
        self._bi_key = blind_index_key

    def seal(self, value: str, column: str) -> bytes:
        """Encrypt ``value`` for ``column``."""
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, value.encode("utf-8"), column.encode("ascii"))

    def open(self, sealed: bytes, column: str) -> str:
        """Decrypt a value sealed for ``column``."""
        try:
            return self._aead.decrypt(sealed[:12], sealed[12:], column.encode("ascii")).decode("utf-8")
        except (InvalidTag, ValueError) as exc:
            raise AtRestError(f"a sealed {column} value does not open (wrong key or damaged row)") from exc

    def seal_bytes(self, value: bytes, column: str) -> bytes:
        """Encrypt raw bytes (e.g. a stored HL7 message) for ``column``."""
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, value, column.encode("ascii"))

    def open_bytes(self, sealed: bytes, column: str) -> bytes:
        """Decrypt bytes sealed with :meth:`seal_bytes` for ``column``."""
        try:
            return self._aead.decrypt(sealed[:12], sealed[12:], column.encode("ascii"))
        except (InvalidTag, ValueError) as exc:
            raise AtRestError(f"a sealed {column} value does not open (wrong key or damaged row)") from exc

    def blind_index(self, national_id: str) -> str:
        """HMAC blind index of a (valid) national ID number."""
        return idnum.blind_index(self._bi_key, national_id)

    def name_index(self, name: str) -> str:
        """Keyed HMAC of a person's full name (spaces and ``^`` dropped, case folded): equal names match.

        Domain-separated from :meth:`blind_index` (the prefix holds a byte no ID number has).
        """
        folded = "".join(name.replace("^", " ").split()).casefold()
        return hmac.new(self._bi_key, b"name\x1f" + folded.encode("utf-8"), hashlib.sha256).hexdigest()
