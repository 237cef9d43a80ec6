"""Helpers shared by binary stream decoders (pure)."""

from __future__ import annotations


def sync_point(buf: bytes | bytearray, preamble: bytes, start: int = 0) -> int:
    """Index (>= ``start``) of the first byte that could begin a frame; ``len(buf)`` if none.

    A full preamble wins; otherwise a preamble prefix at the very end of ``buf`` (the
    rest of it may still arrive).
    """
    i = buf.find(preamble, start)
    if i >= 0:
        return i
    n = len(buf)
    for k in range(len(preamble) - 1, 0, -1):
        if n - k >= start and buf.endswith(preamble[:k]):
            return n - k
    return n


def xor(data: bytes) -> int:
    """XOR of all bytes."""
    value = 0
    for b in data:
        value ^= b
    return value
