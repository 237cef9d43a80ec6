"""Simulated resident ID-card reader (SAM serial protocol), written from the specification.

Frames: ``AA AA AA 96 69``, length u16 BE (bytes after it, checksum included), payload,
XOR of length + payload. The reader answers ``00 00 SW3 data``. Cards come from a
scripted queue: each is "inserted" after a number of find polls with no card and
"removed" a number of find polls after a clean read, so a run is exactly repeatable.

Faults (see :mod:`firmware_sim.faults`) hit the reader's answers; ``nan`` and
``out_of_range`` put a card with a wrong ID check character on the reader.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from firmware_sim.faults import BYTE_FAULTS, FaultPlan, SimFrame
from firmware_sim.patients import Patient

PREAMBLE = bytes([0xAA, 0xAA, 0xAA, 0x96, 0x69])
OK, FOUND = 0x90, 0x9F
NO_CARD, SELECT_FAILED, READ_FAILED = 0x80, 0x81, 0x41
BAD_SUM, BAD_COMMAND = 0x10, 0x21


def sam_frame(payload: bytes) -> bytes:
    """Wrap a payload: preamble, length, payload, XOR checksum."""
    body = (len(payload) + 1).to_bytes(2, "big") + payload
    check = 0
    for b in body:
        check ^= b
    return PREAMBLE + body + bytes([check])


def answer(sw3: int, data: bytes = b"") -> bytes:
    """A reader answer frame with SW1 SW2 = 00 00."""
    return sam_frame(bytes([0, 0, sw3]) + data)


def _field(text: str, size: int) -> bytes:
    chars = size // 2
    return text[:chars].ljust(chars).encode("utf-16-le")


def text_block(p: Patient, national_id: str | None = None) -> bytes:
    """The 256-byte UCS-2 LE text block for ``p`` (``national_id`` overrides the number)."""
    block = b"".join((
        _field(p.name, 30), _field(p.sex, 2), _field(p.ethnic_code, 4), _field(f"{p.birth_date:%Y%m%d}", 16),
        _field(p.address, 70), _field(national_id or p.national_id, 36), _field(p.authority, 30),
        _field(f"{p.valid_from:%Y%m%d}", 16),
        _field("长期" if p.valid_to is None else f"{p.valid_to:%Y%m%d}", 16), _field("", 36),
    ))
    assert len(block) == 256
    return block


def photo(p: Patient) -> bytes:
    """A stand-in for the 1024-byte WLT photo: starts like one, the rest pseudo-random."""
    rng = random.Random(p.national_id)
    return b"WLf\x00~\x002\x00\x00\xff" + bytes(rng.randrange(256) for _ in range(1014))


def read_answer(p: Patient, fingerprint: bool = False, national_id: str | None = None) -> bytes:
    """Answer to ``30 01`` (or ``30 10`` with a 512-byte fingerprint)."""
    text, pic = text_block(p, national_id), photo(p)
    if fingerprint:
        fp = bytes(random.Random(p.name).randrange(256) for _ in range(512))
        return answer(OK, b"\x01\x00\x04\x00\x02\x00" + text + pic + fp)
    return answer(OK, b"\x01\x00\x04\x00" + text + pic)


def wrong_check(number: str) -> str:
    """The same ID number with a wrong check character."""
    return number[:17] + ("0" if number[17] != "0" else "1")


@dataclass
class CardVisit:
    """One card placed on the reader: after ``gap`` empty find polls, for ``stay`` polls after a read."""

    patient: Patient
    gap: int = 3
    stay: int = 3


def _corrupt(frame: bytes) -> bytes:
    return frame[:-1] + bytes([frame[-1] ^ 0x5A])


class IdCardReaderSim:
    """The reader's state machine (no I/O)."""

    def __init__(self, visits: Iterator[CardVisit], plan: FaultPlan, fingerprint: bool = False) -> None:
        self.visits = visits
        self.plan = plan
        self.fingerprint = fingerprint
        self._buf = bytearray()
        self._visit: CardVisit | None = None
        self._pending: CardVisit | None = None
        self._gap: int | None = None
        self._selected = False
        self._read = False
        self._left = 0
        self.finished = False
        self.delivered: list[str] = []  #: ID numbers of cards read cleanly (what the hub must report)
        self.bad_frames = 0  #: answers sent broken on purpose

    def tick(self, now: float) -> list[SimFrame]:
        """The reader never speaks unasked."""
        return []

    def receive(self, data: bytes, now: float) -> list[SimFrame]:
        """Answer every complete command in ``data``."""
        self._buf += data
        out: list[SimFrame] = []
        while True:
            start = self._buf.find(PREAMBLE)
            if start < 0:
                del self._buf[: max(0, len(self._buf) - 4)]
                return out
            del self._buf[:start]
            if len(self._buf) < 7:
                return out
            length = int.from_bytes(self._buf[5:7], "big")
            if len(self._buf) < 7 + length:
                return out
            frame = bytes(self._buf[:7 + length])
            del self._buf[:7 + length]
            check = 0
            for b in frame[5:-1]:
                check ^= b
            if check != frame[-1] or length < 3:
                out.append(self._frame(answer(BAD_SUM)))
            else:
                out.append(self._command(frame[7], frame[8]))

    def _frame(self, data: bytes, extra: set[str] | None = None) -> SimFrame:
        fault = self.plan.pick(BYTE_FAULTS | (extra or set()))
        frame = SimFrame(data, fault, corrupt=_corrupt)

        def sent() -> None:
            if fault in ("bad_checksum", "truncate", "disconnect", "nan", "out_of_range"):
                self.bad_frames += 1

        frame.on_sent = sent
        return frame

    def _next_card(self) -> None:
        if self._gap is None:
            try:
                self._visit = None
                nxt = next(self.visits)
            except StopIteration:
                self.finished = True
                return
            self._pending = nxt
            self._gap = nxt.gap
        self._gap -= 1
        if self._gap <= 0 and self._pending is not None:
            self._visit, self._gap = self._pending, None
            self._selected = self._read = False
            self._left = self._visit.stay

    def _command(self, cmd: int, para: int) -> SimFrame:
        if (cmd, para) == (0x20, 0x01):
            if self._visit is not None and self._read:
                self._left -= 1
                if self._left < 0:
                    self._visit = None
            if self._visit is None:
                self._next_card()
                return self._frame(answer(NO_CARD))
            return self._frame(answer(FOUND, b"\x00\x00\x00\x00"))
        if (cmd, para) == (0x20, 0x02):
            if self._visit is None:
                return self._frame(answer(SELECT_FAILED))
            self._selected = True
            return self._frame(answer(OK, bytes(8)))
        if cmd == 0x30 and para in (0x01, 0x10):
            if self._visit is None or not self._selected:
                return self._frame(answer(READ_FAILED))
            frame = self._frame(b"", {"nan", "out_of_range"})
            p = self._visit.patient
            bad_id = frame.fault in ("nan", "out_of_range")
            frame.data = read_answer(p, para == 0x10, wrong_check(p.national_id) if bad_id else None)
            count_bad = frame.on_sent

            def sent() -> None:
                if count_bad is not None:
                    count_bad()
                if frame.fault not in ("bad_checksum", "truncate", "disconnect"):
                    if not bad_id and not self._read:
                        self.delivered.append(p.national_id)
                    self._read = True

            frame.on_sent = sent
            return frame
        if cmd in (0x10, 0x11) and para == 0xFF:
            return self._frame(answer(OK))
        if (cmd, para) == (0x12, 0xFF):
            return self._frame(answer(OK, bytes(16)))
        return self._frame(answer(BAD_COMMAND))
