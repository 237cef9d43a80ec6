"""Encryption at rest of stored HL7 messages (they carry national ID numbers and names).

A sealed message is ``nonce (12) || AES-256-GCM ciphertext || tag (16)`` with the table
name as associated data, so a value copied into another table does not open. The key
comes from configuration (the same at-rest key the cloud uses for personal fields).
Without a sealer, stores keep messages in the clear (tests, a pilot on an encrypted disk).
"""

from __future__ import annotations

import os
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cloud.mllp.errors import MllpError


class SealError(MllpError):
    """A stored message does not open (wrong key or damaged row)."""


class Sealer(Protocol):
    """What a store needs to keep raw messages encrypted."""

    def seal(self, raw: bytes, table: str) -> bytes:
        """Encrypt ``raw`` for ``table``."""
        ...

    def open(self, sealed: bytes, table: str) -> bytes:
        """Decrypt; raise :class:`SealError` when it does not open."""
        ...


class AesGcmSealer:
    """AES-256-GCM with a 32-byte key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise SealError("the at-rest key for HL7 messages must be 32 bytes (64 hex characters in cloud.toml)")
        self._aead = AESGCM(key)

    def seal(self, raw: bytes, table: str) -> bytes:
        """Encrypt ``raw`` for ``table``."""
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, raw, table.encode("ascii"))

    def open(self, sealed: bytes, table: str) -> bytes:
        """Decrypt a message sealed for ``table``."""
        try:
            return self._aead.decrypt(sealed[:12], sealed[12:], table.encode("ascii"))
        except (InvalidTag, ValueError) as exc:
            raise SealError(f"a stored {table} message does not open (wrong key or damaged row)") from exc
