"""The sealed sync batch: clear authenticated header, HPKE-sealed body, Ed25519 signature.

Layout (all integers big-endian; docs/protocol.md is the normative description)::

    off  len  field
      0    4  magic "MCHB"
      4    1  version (1)
      5    1  suite (1 x25519-aes256gcm, 2 mlkem768x25519-aes256gcm)
      6    1  compression (1 zstd)
      7    1  flags (0)
      8    8  epoch
     16    8  first_seq
     24    8  last_seq
     32    4  count (= last_seq - first_seq + 1)
     36    8  created, ms since 1970-01-01 UTC
     44    8  recipient key id (cloud HPKE key)
     52    8  signer key id (hub Ed25519 key)
     60    1  n = length of hub id (1..64)
     61    n  hub id, ASCII [A-Za-z0-9._-]
   61+n    4  m = length of sealed body
   65+n    m  sealed body: HPKE enc || ciphertext, info = "mchub/batch/v1" 0x00 || bytes 0..61+n
 65+n+m   64  Ed25519 signature over every preceding byte

Opening checks, in order: structure (MalformedEnvelope, UnsupportedVersion, UnknownSuite,
BodyTooLarge), signature (BadSignature), recipient (WrongRecipient), decryption
(TamperedCiphertext), body (BadBody, BodyTooLarge).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from protocol.batch import Columns, decode_columns, encode_records
from protocol.errors import (
    BadBody,
    BadSignature,
    BodyTooLarge,
    MalformedEnvelope,
    TamperedCiphertext,
    UnknownSuite,
    UnsupportedVersion,
    WrongRecipient,
)
from protocol.ids import now_ms
from protocol.keys import RecipientPrivate, RecipientPublic, SuiteId, hpke_suite, signing_key_id
from protocol.model import Record

MAGIC = b"MCHB"
VERSION = 1
COMPRESSION_ZSTD = 1
INFO_PREFIX = b"mchub/batch/v1\x00"
SIGNATURE_LEN = 64
MAX_SEALED_BODY = 32 << 20
_FIXED = struct.Struct(">4sBBBBQQQIQ8s8sB")  # through the hub-id length byte: 61 bytes
_HUB_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """The clear, signed part of a batch."""

    version: int
    suite: SuiteId
    epoch: int
    first_seq: int
    last_seq: int
    count: int
    created_ms: int
    recipient_key_id: bytes
    signer_key_id: bytes
    hub_id: str
    header_len: int  #: bytes 0..header_len are the HPKE info suffix
    body_len: int


def _pack_header(
    suite: SuiteId, epoch: int, first: int, count: int, created: int, rkid: bytes, skid: bytes, hub_id: str
) -> bytes:
    hid = hub_id.encode("ascii")
    if not _HUB_ID.fullmatch(hid):
        raise ValueError(f"hub id {hub_id!r} must be 1-64 characters of A-Z a-z 0-9 . _ -")
    fixed = _FIXED.pack(MAGIC, VERSION, suite, COMPRESSION_ZSTD, 0, epoch, first, first + count - 1,
                        count, created, rkid, skid, len(hid))
    return fixed + hid


def seal(
    records: Sequence[Record],
    *,
    hub_id: str,
    epoch: int,
    signer: ed25519.Ed25519PrivateKey,
    recipient: RecipientPublic,
    created_ms: int | None = None,
) -> bytes:
    """Seal consecutive records (``seq`` strictly increasing by one) into a signed batch."""
    if not records:
        raise ValueError("a batch holds at least one record")
    first = records[0].seq
    for i, r in enumerate(records):
        if r.seq != first + i:
            raise ValueError(f"records must have consecutive seqs: expected {first + i}, got {r.seq}")
    header = _pack_header(recipient.suite, epoch, first, len(records),
                          now_ms() if created_ms is None else created_ms,
                          recipient.key_id, signing_key_id(signer.public_key()), hub_id)
    sealed = hpke_suite(recipient.suite).encrypt(encode_records(records), recipient.key(),
                                                 info=INFO_PREFIX + header)
    signed = header + struct.pack(">I", len(sealed)) + sealed
    return signed + signer.sign(signed)


#: bytes of a batch that always hold its whole clear header (fixed part, hub id, body length)
HEADER_PREFIX_MAX = _FIXED.size + 64 + 4


def parse_header(data: bytes, max_body: int = MAX_SEALED_BODY, *, total_len: int | None = None) -> BatchHeader:
    """Read and check the clear header without any cryptography (to find the keys).

    With ``total_len`` (a declared Content-Length), ``data`` may be just the first
    bytes of the batch (``min(total_len, HEADER_PREFIX_MAX)`` suffice): a receiver checks
    the header, and who claims to have sent it, before reading the rest.
    """
    total = len(data) if total_len is None else total_len
    if total < _FIXED.size or len(data) < _FIXED.size:
        raise MalformedEnvelope(f"batch of {total} bytes is shorter than the {_FIXED.size}-byte header")
    magic, version, suite, comp, _flags, epoch, first, last, count, created, rkid, skid, n = \
        _FIXED.unpack_from(data)
    if magic != MAGIC:
        raise MalformedEnvelope("not an mchub batch (bad magic)")
    if version != VERSION:
        raise UnsupportedVersion(f"batch format version {version} is not supported (this server speaks 1)")
    try:
        suite_id = SuiteId(suite)
    except ValueError:
        raise UnknownSuite(f"unknown crypto suite {suite}") from None
    if comp != COMPRESSION_ZSTD:
        raise MalformedEnvelope(f"unknown compression {comp}")
    if count < 1 or first < 1 or last != first + count - 1:
        raise MalformedEnvelope(f"inconsistent seq range: first {first}, last {last}, count {count}")
    end_id = _FIXED.size + n
    if total < end_id + 4 + SIGNATURE_LEN or len(data) < end_id + 4:
        raise MalformedEnvelope("batch truncated inside the header")
    hid = data[_FIXED.size:end_id]
    if not _HUB_ID.fullmatch(hid):
        raise MalformedEnvelope("hub id has characters outside A-Z a-z 0-9 . _ -")
    (body_len,) = struct.unpack_from(">I", data, end_id)
    if body_len > max_body:
        raise BodyTooLarge(f"sealed body of {body_len} bytes exceeds the limit of {max_body}")
    if total != end_id + 4 + body_len + SIGNATURE_LEN:
        raise MalformedEnvelope(
            f"batch is {total} bytes but its header promises {end_id + 4 + body_len + SIGNATURE_LEN}"
        )
    return BatchHeader(version, suite_id, epoch, first, last, count, created, rkid, skid,
                       hid.decode("ascii"), end_id, body_len)


def verify(data: bytes, header: BatchHeader, signer: ed25519.Ed25519PublicKey) -> None:
    """Check the hub's signature; raises BadSignature."""
    if signing_key_id(signer) != header.signer_key_id:
        raise BadSignature("batch was signed with a key other than the hub's registered key")
    try:
        signer.verify(data[-SIGNATURE_LEN:], data[:-SIGNATURE_LEN])
    except InvalidSignature:
        raise BadSignature("batch signature does not verify") from None


def open_batch(
    data: bytes,
    *,
    signer: ed25519.Ed25519PublicKey,
    recipients: Mapping[bytes, RecipientPrivate],
    max_body: int = MAX_SEALED_BODY,
    max_plain: int = 64 << 20,
) -> tuple[BatchHeader, list[Record]]:
    """Verify and open a batch. ``recipients`` maps key id -> the cloud's private keys.

    Returns the header and the records with hub id, epoch and seq filled in.
    """
    header, columns = open_columns(data, signer=signer, recipients=recipients, max_body=max_body,
                                   max_plain=max_plain)
    return header, columns.records()


def open_columns(
    data: bytes,
    *,
    signer: ed25519.Ed25519PublicKey,
    recipients: Mapping[bytes, RecipientPrivate],
    max_body: int = MAX_SEALED_BODY,
    max_plain: int = 64 << 20,
) -> tuple[BatchHeader, Columns]:
    """:func:`open_batch` with the body as :class:`protocol.batch.Columns` (the cloud's hot path)."""
    header = parse_header(data, max_body)
    verify(data, header, signer)
    key = recipients.get(header.recipient_key_id)
    if key is None or key.suite is not header.suite:
        raise WrongRecipient("batch was sealed to a cloud key this server does not hold")
    start = header.header_len + 4
    sealed = data[start:start + header.body_len]
    try:
        body = hpke_suite(header.suite).decrypt(sealed, key.key(), info=INFO_PREFIX + data[:header.header_len])
    except Exception as exc:  # cryptography raises InvalidTag or ValueError for a bad enc
        raise TamperedCiphertext("batch body does not decrypt") from exc
    columns = decode_columns(body, hub_id=header.hub_id, epoch=header.epoch, first_seq=header.first_seq,
                             max_size=max_plain)
    if columns.count != header.count:
        raise BadBody(f"header promises {header.count} records, body holds {columns.count}")
    return header, columns
