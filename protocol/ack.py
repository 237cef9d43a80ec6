"""The cloud's signed answer to a batch.

Layout (big-endian)::

    off len field
      0   4 magic "MCHA"
      4   1 version (1)
      5   1 status: 0 stored, 1 duplicate (already stored, nothing new), 2 gap (resend from expected)
      6   2 reserved (0)
      8   8 epoch
     16   8 acked_through_seq: every seq <= this is durably stored in the cloud (0 = none yet)
     24   8 batch first_seq   (echo)
     32   8 batch last_seq    (echo)
     40  32 SHA-256 of the sealed batch being answered
     72   8 created, ms since 1970-01-01 UTC
     80   8 cloud signing key id
     88   1 n = length of hub id
     89   n hub id
   89+n  64 Ed25519 signature over every preceding byte

The next seq the cloud expects is ``acked_through_seq + 1``.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from enum import IntEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from protocol.errors import AckError
from protocol.ids import now_ms
from protocol.keys import signing_key_id

MAGIC = b"MCHA"
VERSION = 1
_FIXED = struct.Struct(">4sBBHQQQQ32sQ8sB")


class AckStatus(IntEnum):
    """What the cloud did with the batch."""

    STORED = 0
    DUPLICATE = 1
    GAP = 2


@dataclass(frozen=True, slots=True)
class Ack:
    """A decoded, verified acknowledgement."""

    status: AckStatus
    hub_id: str
    epoch: int
    acked_through_seq: int
    first_seq: int
    last_seq: int
    batch_digest: bytes
    created_ms: int

    @property
    def expected_seq(self) -> int:
        """The next seq the cloud wants."""
        return self.acked_through_seq + 1


def batch_digest(sealed_batch: bytes) -> bytes:
    """SHA-256 of a sealed batch, as an ack carries it."""
    return hashlib.sha256(sealed_batch).digest()


def sign_ack(ack: Ack, key: ed25519.Ed25519PrivateKey) -> bytes:
    """Encode and sign an ack with the cloud's key."""
    hid = ack.hub_id.encode("ascii")
    body = _FIXED.pack(MAGIC, VERSION, ack.status, 0, ack.epoch, ack.acked_through_seq, ack.first_seq,
                       ack.last_seq, ack.batch_digest, ack.created_ms or now_ms(),
                       signing_key_id(key.public_key()), len(hid)) + hid
    return body + key.sign(body)


def verify_ack(data: bytes, key: ed25519.Ed25519PublicKey, sealed_batch: bytes | None = None) -> Ack:
    """Verify the cloud's signature (and, given the batch, that the ack answers it)."""
    if len(data) < _FIXED.size + 64:
        raise AckError(f"ack of {len(data)} bytes is too short")
    magic, version, status, _r, epoch, through, first, last, digest, created, kid, n = _FIXED.unpack_from(data)
    if magic != MAGIC or version != VERSION:
        raise AckError("not an mchub ack of version 1")
    if len(data) != _FIXED.size + n + 64:
        raise AckError("ack length does not match its hub id length")
    if kid != signing_key_id(key):
        raise AckError("ack signed by a key other than the cloud's")
    try:
        key.verify(data[-64:], data[:-64])
    except InvalidSignature:
        raise AckError("ack signature does not verify") from None
    try:
        st = AckStatus(status)
        hub_id = data[_FIXED.size:_FIXED.size + n].decode("ascii")
    except (ValueError, UnicodeDecodeError) as exc:
        raise AckError(f"ack has a bad field: {exc}") from exc
    if sealed_batch is not None and digest != batch_digest(sealed_batch):
        raise AckError("ack answers a different batch")
    return Ack(st, hub_id, epoch, through, first, last, digest, created)
