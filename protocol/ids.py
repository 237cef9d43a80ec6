"""UUIDv7 (RFC 9562) helpers.

A reading's ``uid`` is *derived*, not random: its 48-bit timestamp is the hub receive
time and its 74 "random" bits come from SHA-256 of ``hub_id|epoch|seq`` (UUID bytes 6-15
are the first 10 digest bytes, then the version and variant bits are set). The hub and the
cloud compute the same value, so it never needs to travel in a batch, yet it stays
unique, time-ordered and opaque, as a UUIDv7 for humans and logs should be.
"""

from __future__ import annotations

import hashlib
import os
import time


def _uuid7(unix_ms: int, rand: bytes) -> str:
    """UUIDv7 bytes: 48-bit big-endian ms timestamp, then ``rand[:10]`` with version/variant bits set."""
    b = bytearray((unix_ms & 0xFFFF_FFFF_FFFF).to_bytes(6, "big") + rand[:10])
    b[6] = 0x70 | (b[6] & 0x0F)
    b[8] = 0x80 | (b[8] & 0x3F)
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def uuid7(unix_ms: int | None = None) -> str:
    """A fresh random UUIDv7 (for sessions and other hub-made ids)."""
    return _uuid7(time.time_ns() // 1_000_000 if unix_ms is None else unix_ms, os.urandom(10))


def reading_uid(hub_id: str, epoch: int, seq: int, at_ms: int) -> str:
    """The UUIDv7 of the reading ``(hub_id, epoch, seq)`` received at ``at_ms``."""
    digest = hashlib.sha256(f"{hub_id}|{epoch}|{seq}".encode()).digest()
    return _uuid7(at_ms, digest)


_KEEP = ~((0xF << 76) | (0x3 << 62))  #: clears the version and variant bits of a 128-bit UUID
_V7 = (0x7 << 76) | (0x2 << 62)  #: version 7, variant RFC 9562


def reading_uid_ints(hub_id: str, epoch: int, seqs: list[int], ats: list[int]) -> list[int]:
    """:func:`reading_uid` of many readings of one ``(hub_id, epoch)`` as 128-bit integers.

    About twice as fast as one call per reading: the hash of the common ``hub_id|epoch|``
    prefix is computed once and copied, and each UUID is assembled as one integer (the
    cloud's ingest hot path turns these into database UUIDs without any text).
    """
    prefix = hashlib.sha256(f"{hub_id}|{epoch}|".encode())
    out = []
    for seq, at in zip(seqs, ats, strict=True):
        h = prefix.copy()
        h.update(b"%d" % seq)
        out.append((((at & 0xFFFF_FFFF_FFFF) << 80 | int.from_bytes(h.digest()[:10], "big")) & _KEEP) | _V7)
    return out


def reading_uids(hub_id: str, epoch: int, seqs: list[int], ats: list[int]) -> list[str]:
    """:func:`reading_uid` of many readings of one ``(hub_id, epoch)``."""
    out = []
    for x in reading_uid_ints(hub_id, epoch, seqs, ats):
        s = f"{x:032x}"
        out.append(f"{s[:8]}-{s[8:12]}-{s[12:16]}-{s[16:20]}-{s[20:]}")
    return out


def now_ms() -> int:
    """Wall-clock time in milliseconds since 1970-01-01 UTC."""
    return time.time_ns() // 1_000_000
