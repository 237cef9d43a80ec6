"""Keys of the sync protocol and their ids.

* A hub signs batches with its own Ed25519 key (generated on the hub, never leaves it).
* The cloud holds an HPKE recipient key per suite (batches are sealed to it) and an
  Ed25519 key that signs acks and commands.

A key id is the first 8 bytes of SHA-256 over the raw public key bytes; it appears in
batch headers so a receiver can pick the key (and tell "wrong recipient" from tampering).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from enum import IntEnum

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, mlkem, x25519
from cryptography.hazmat.primitives.hpke import (
    AEAD,
    KDF,
    KEM,
    MLKEM768X25519PrivateKey,
    MLKEM768X25519PublicKey,
    Suite,
)

from protocol.errors import UnknownSuite


class SuiteId(IntEnum):
    """Crypto suites of the sync envelope; the number is the byte in the batch header."""

    X25519_AES256GCM = 1
    MLKEM768X25519_AES256GCM = 2

    @property
    def label(self) -> str:
        """Name used in configuration and docs."""
        return {1: "x25519-aes256gcm", 2: "mlkem768x25519-aes256gcm"}[self.value]

    @classmethod
    def from_label(cls, label: str) -> SuiteId:
        """Parse a configuration name such as ``x25519-aes256gcm``."""
        for suite in cls:
            if suite.label == label:
                return suite
        names = ", ".join(s.label for s in cls)
        raise UnknownSuite(f"unknown crypto suite {label!r}; known: {names}")


def hpke_suite(suite: SuiteId) -> Suite:
    """The RFC 9180 cipher suite behind a SuiteId."""
    kem = KEM.X25519 if suite is SuiteId.X25519_AES256GCM else KEM.MLKEM768_X25519
    return Suite(kem, KDF.HKDF_SHA256, AEAD.AES_256_GCM)


def key_id(public_raw: bytes) -> bytes:
    """8-byte id of a raw public key."""
    return hashlib.sha256(public_raw).digest()[:8]


def ed25519_raw(key: ed25519.Ed25519PublicKey) -> bytes:
    """Raw 32-byte form of an Ed25519 public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def signing_key_id(key: ed25519.Ed25519PublicKey) -> bytes:
    """Key id of an Ed25519 public key."""
    return key_id(ed25519_raw(key))


def load_ed25519_public(raw: bytes) -> ed25519.Ed25519PublicKey:
    """Ed25519 public key from its raw 32 bytes."""
    return ed25519.Ed25519PublicKey.from_public_bytes(raw)


RecipientPublicKey = x25519.X25519PublicKey | MLKEM768X25519PublicKey
RecipientPrivateKey = x25519.X25519PrivateKey | MLKEM768X25519PrivateKey


@functools.lru_cache(maxsize=32)
def _public_key(suite: SuiteId, raw: bytes) -> RecipientPublicKey:
    if suite is SuiteId.X25519_AES256GCM:
        return x25519.X25519PublicKey.from_public_bytes(raw)
    return MLKEM768X25519PublicKey(mlkem.MLKEM768PublicKey.from_public_bytes(raw[:1184]),
                                   x25519.X25519PublicKey.from_public_bytes(raw[1184:]))


@functools.lru_cache(maxsize=32)
def _private_key(suite: SuiteId, secret: bytes) -> RecipientPrivateKey:
    if suite is SuiteId.X25519_AES256GCM:
        return x25519.X25519PrivateKey.from_private_bytes(secret)
    return MLKEM768X25519PrivateKey(mlkem.MLKEM768PrivateKey.from_seed_bytes(secret[:64]),
                                    x25519.X25519PrivateKey.from_private_bytes(secret[64:]))


@dataclass(frozen=True)
class RecipientPublic:
    """The cloud's public HPKE key for one suite, in a form that can be published."""

    suite: SuiteId
    raw: bytes  #: x25519: 32 bytes; hybrid: 1184 bytes ML-KEM-768 then 32 bytes X25519

    @property
    def key_id(self) -> bytes:
        """8-byte id that batch headers carry."""
        return key_id(self.raw)

    def key(self) -> RecipientPublicKey:
        """The ``cryptography`` key object for HPKE (built once per key and process)."""
        return _public_key(self.suite, self.raw)


@dataclass(frozen=True)
class RecipientPrivate:
    """The cloud's private HPKE key for one suite. ``secret`` is 32 (x25519) or 96 bytes (hybrid)."""

    suite: SuiteId
    secret: bytes

    @classmethod
    def generate(cls, suite: SuiteId = SuiteId.X25519_AES256GCM) -> RecipientPrivate:
        """A new random key."""
        x = x25519.X25519PrivateKey.generate().private_bytes_raw()
        if suite is SuiteId.X25519_AES256GCM:
            return cls(suite, x)
        return cls(suite, mlkem.MLKEM768PrivateKey.generate().private_bytes_raw() + x)

    def key(self) -> RecipientPrivateKey:
        """The ``cryptography`` key object for HPKE (built once per key and process: expanding
        an ML-KEM seed costs more than opening a small batch)."""
        return _private_key(self.suite, self.secret)

    def public(self) -> RecipientPublic:
        """The matching public key."""
        x = x25519.X25519PrivateKey.from_private_bytes(self.secret[-32:]).public_key().public_bytes_raw()
        if self.suite is SuiteId.X25519_AES256GCM:
            return RecipientPublic(self.suite, x)
        m = mlkem.MLKEM768PrivateKey.from_seed_bytes(self.secret[:64]).public_key().public_bytes_raw()
        return RecipientPublic(self.suite, m + x)
