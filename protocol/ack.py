"""The cloud's signed answer to a batch.

Layout (big-endian)::

    off len field
      0   4 magic "MCHA"
      4   1 version (1, or 2 when records were refused: see below)
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

Version 2 (only when the cloud refused single records of the batch, docs/protocol.md §3.1)
inserts the refused records between the hub id and the signature::

   89+n   4 m = number of refused records (1..2**20; at most the batch's record count)
          m times: 8 seq · 1 k = length of reason · k reason (ASCII ``[a-z_]``, 1..32)

Every refused seq lies in the batch's range, in increasing order; the mark covers them
(they were kept by the cloud as refused, and the hub keeps them in its dead-letter list).
An ack without refusals is version 1, byte for byte what a version-1 cloud sends.

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
VERSION_REFUSALS = 2  #: an ack that names records refused one by one
MAX_REFUSED = 1 << 20
_FIXED = struct.Struct(">4sBBHQQQQ32sQ8sB")
_COUNT = struct.Struct(">I")
_SEQ = struct.Struct(">QB")
_REASON = frozenset(b"abcdefghijklmnopqrstuvwxyz_")


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
    refused: tuple[tuple[int, str], ...] = ()  #: (seq, reason code) of records refused one by one

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
    body = _FIXED.pack(MAGIC, VERSION_REFUSALS if ack.refused else VERSION, ack.status, 0, ack.epoch,
                       ack.acked_through_seq, ack.first_seq, ack.last_seq, ack.batch_digest,
                       ack.created_ms or now_ms(), signing_key_id(key.public_key()), len(hid)) + hid
    if ack.refused:
        body += _encode_refused(ack.refused)
    return body + key.sign(body)


def _encode_refused(refused: tuple[tuple[int, str], ...]) -> bytes:
    if len(refused) > MAX_REFUSED:
        raise AckError(f"an ack names at most {MAX_REFUSED} refused records")
    out = [_COUNT.pack(len(refused))]
    for seq, reason in refused:
        code = reason.encode("ascii")
        if not 1 <= len(code) <= 32 or not set(code) <= _REASON:
            raise AckError(f"refusal reason {reason!r} is not a code of [a-z_]{{1,32}}")
        out.append(_SEQ.pack(seq, len(code)) + code)
    return b"".join(out)


def _decode_refused(data: bytes, first: int, last: int) -> tuple[tuple[int, str], ...]:
    """The refusal list of a version-2 ack (``data`` is exactly that section); raises AckError."""
    if len(data) < _COUNT.size:
        raise AckError("ack of version 2 has no refusal list")
    (m,) = _COUNT.unpack_from(data)
    if not 1 <= m <= MAX_REFUSED:
        raise AckError(f"ack names {m} refused records (1..{MAX_REFUSED})")
    out: list[tuple[int, str]] = []
    pos = _COUNT.size
    for _ in range(m):
        if pos + _SEQ.size > len(data):
            raise AckError("ack refusal list is truncated")
        seq, k = _SEQ.unpack_from(data, pos)
        pos += _SEQ.size
        code = data[pos:pos + k]
        pos += k
        if len(code) != k or not 1 <= k <= 32 or not set(code) <= _REASON:
            raise AckError("ack refusal reason is not a code of [a-z_]{1,32}")
        if not first <= seq <= last or (out and seq <= out[-1][0]):
            raise AckError(f"ack refuses seq {seq}, outside the batch {first}..{last} or out of order")
        out.append((seq, code.decode("ascii")))
    if pos != len(data):
        raise AckError("ack refusal list has trailing bytes")
    return tuple(out)


def verify_ack(data: bytes, key: ed25519.Ed25519PublicKey, sealed_batch: bytes | None = None) -> Ack:
    """Verify the cloud's signature (and, given the batch, that the ack answers it)."""
    if len(data) < _FIXED.size + 64:
        raise AckError(f"ack of {len(data)} bytes is too short")
    magic, version, status, _r, epoch, through, first, last, digest, created, kid, n = _FIXED.unpack_from(data)
    if magic != MAGIC or version not in (VERSION, VERSION_REFUSALS):
        raise AckError("not an mchub ack of version 1 or 2")
    if len(data) < _FIXED.size + n + 64 or (version == VERSION and len(data) != _FIXED.size + n + 64):
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
    refused = _decode_refused(data[_FIXED.size + n:-64], first, last) if version == VERSION_REFUSALS else ()
    return Ack(st, hub_id, epoch, through, first, last, digest, created, refused)
