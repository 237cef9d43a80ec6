"""Simulated height/weight stations and the serial BP monitor, one encoder per dialect.

Each encoder writes the wire format from the specification (devices.md; the Accutorr
service manual for ``P:`` lines) without touching ``drivers``. :class:`StationSim` runs
a queue of patient visits:

* push mode: one measurement frame every ``interval`` seconds;
* poll mode: every host request is answered with the measurement of the patient now
  "standing on the platform" (``stay`` requests), then with "empty" (``gap`` requests).
  The last answer of a stay is never faulted, so each visit is delivered.

``delivered`` logs the values the hub must report, in order (push: every valid frame;
poll: a valid answer whose values differ from the previous valid one since "empty").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from firmware_sim.faults import BYTE_FAULTS, FaultPlan, SimFrame
from firmware_sim.patients import Patient

LB_PER_KG = 1 / 0.45359237


@dataclass(frozen=True)
class Values:
    """What one frame says (None: field absent); ``nan`` marks the device's no-value code."""

    height_cm: float | None = None
    weight_kg: float | None = None
    systolic: int | None = None
    diastolic: int | None = None
    mean: int | None = None
    pulse: int | None = None
    nan: bool = False


def values_for(dialect: str, p: Patient | None, fault: str | None) -> Values:
    """The values a device shows for patient ``p`` (None: platform empty) under a value fault."""
    if p is None:
        return Values()
    if dialect == "accutorr":
        v = Values(systolic=p.systolic, diastolic=p.diastolic, mean=p.mean_pressure, pulse=p.pulse)
        if fault == "out_of_range":
            v = Values(systolic=295, diastolic=15, mean=108, pulse=p.pulse)
    else:
        v = Values(height_cm=p.height_cm, weight_kg=p.weight_kg)
        if fault == "out_of_range":
            v = Values(height_cm=p.height_cm, weight_kg=450.0)
    if fault == "nan":
        v = Values(v.height_cm, v.weight_kg, v.systolic, v.diastolic, v.mean, v.pulse, nan=True)
    return v


# --- A5 5A binary module ------------------------------------------------------------------

def a5_frame(device_id: int, function: int, data: bytes = b"") -> bytes:
    """``A5 5A LEN DEV FN DATA CS`` with ``CS = (sum + 1) & 0xFF``."""
    head = bytes([0xA5, 0x5A, len(data) + 3, device_id, function]) + data
    return head + bytes([(sum(head) + 1) & 0xFF])


def a5_encode(v: Values, function: int = 0x37, device_id: int = 3) -> bytes:
    """Height (mm) and/or weight (100 g), big-endian; 0xFFFF for no value, 0/0 for empty."""
    height = 0xFFFF if v.nan else round((v.height_cm or 0) * 10)
    weight = round((v.weight_kg or 0) * 10)
    data = {0x35: height.to_bytes(2, "big"), 0x36: weight.to_bytes(2, "big"),
            0x37: height.to_bytes(2, "big") + weight.to_bytes(2, "big")}.get(function, b"")
    return a5_frame(device_id, function, data)


# --- text dialects ------------------------------------------------------------------------

def tanita_encode(v: Values, p: Patient | None) -> bytes:
    """Tanita-style key/value line with an XOR ``CS`` field."""
    weight = "--" if v.nan else f"{v.weight_kg or 0:.1f}"
    age = 35 if p is None else max(1, 2025 - p.birth_date.year)
    body = (f'{{0,16,~0,1,~1,1,~2,1,MO,"DC-217A",DT,"05/03/2025",Ti,"09:41",GE,{p.sex if p else 1},AG,{age},'
            f"Hm,{v.height_cm or 0:.1f},Wk,{weight},")
    check = 0
    for b in body.encode("ascii"):
        check ^= b
    return f"{body}CS,{check:02X}\r\n".encode("ascii")


def detecto_encode(v: Values) -> bytes:
    """``12:00,08/07/15,21.5,5'03.0",132.3lb`` + CR."""
    if v.weight_kg is None:
        return b"09:41,03/05/25,--,--,0.0lb\r"
    inches = round((v.height_cm or 0) / 2.54, 1)
    feet, rest = divmod(inches, 12)
    bmi = f"{v.weight_kg / ((v.height_cm or 100) / 100) ** 2:.1f}"
    weight = "--lb" if v.nan else f"{v.weight_kg * LB_PER_KG:.1f}lb"
    return f"09:41,03/05/25,{bmi},{int(feet)}'{rest:04.1f}\",{weight}\r".encode("ascii")


def accutorr_encode(v: Values, elapsed: int = 0) -> bytes:
    """``P:--,pulse,sys,mean,dia,000,000,000,elapsed`` + CR LF, then the ``>`` prompt."""
    def f(x: int | None) -> str:
        return " --" if x is None else f"{x:>3}"
    sys_ = None if v.nan else v.systolic
    return (f"P:--,{f(v.pulse)},{f(sys_)},{f(v.mean)},{f(v.diastolic)},000,000,000,{elapsed:>2}\r\n>"
            .encode("ascii"))


def _corrupt_for(dialect: str) -> Callable[[bytes], bytes]:
    if dialect == "a5":
        return lambda d: d[:-1] + bytes([d[-1] ^ 0x21])
    if dialect == "tanita-csv":
        return lambda d: d.replace(b",CS,", b",CS,Z")  # checksum field no longer matches
    return lambda d: d.replace(b",", b";", 2)  # no checksum in the protocol: a garbled separator


@dataclass
class Visit:
    """One patient at the station: ``stay`` polls on the platform, then ``gap`` polls empty."""

    patient: Patient
    stay: int = 3
    gap: int = 2


class StationSim:
    """A station or BP monitor of ``dialect`` in ``mode`` ("push" or "poll")."""

    def __init__(self, dialect: str, mode: str, visits: Iterator[Visit], plan: FaultPlan,
                 interval: float = 1.0) -> None:
        if dialect not in ("a5", "tanita-csv", "detecto", "accutorr"):
            raise ValueError(f"unknown station dialect {dialect!r}")
        self.dialect, self.mode, self.visits, self.plan = dialect, mode, visits, plan
        self.interval = interval
        self.finished = False
        self.delivered: list[Values] = []
        self.bad_frames = 0
        self._next_push: float | None = None
        self._visit: Visit | None = None
        self._polls = 0
        self._last: Values | None = None  # last valid values sent since "empty"
        self._shown: Values = Values()  # the accutorr keeps showing its last measurement
        self._buf = bytearray()

    # push ----------------------------------------------------------------------------------
    def tick(self, now: float) -> list[SimFrame]:
        """In push mode, one frame per interval."""
        if self.mode != "push" or self.finished:
            return []
        if self._next_push is None:
            self._next_push = now + self.interval
        if now < self._next_push:
            return []
        self._next_push = now + self.interval
        try:
            patient = next(self.visits).patient
        except StopIteration:
            self.finished = True
            return []
        return [self._measurement(patient, allow_faults=True, dedupe=False)]

    # poll ----------------------------------------------------------------------------------
    def receive(self, data: bytes, now: float) -> list[SimFrame]:
        """Answer poll requests."""
        self._buf += data
        out: list[SimFrame] = []
        for request in self._requests():
            out.append(self._answer(request))
        return out

    def _requests(self) -> list[int]:
        """Complete requests in the buffer (A5: function codes; text: the poll characters)."""
        found: list[int] = []
        if self.dialect == "a5":
            while (start := self._buf.find(b"\xa5\x5a")) >= 0 and len(self._buf) >= start + 3:
                end = start + 3 + self._buf[start + 2]
                if len(self._buf) < end:
                    break
                frame = bytes(self._buf[start:end])
                del self._buf[:end]
                if (sum(frame[:-1]) + 1) & 0xFF == frame[-1] and len(frame) >= 6:
                    found.append(frame[4])
            return found
        for b in bytes(self._buf):
            if b in b"\x05PCL":
                found.append(b)
        self._buf.clear()
        return found

    def _answer(self, request: int) -> SimFrame:
        if self.dialect == "a5" and request == 0x3C:
            return SimFrame(a5_frame(3, 0x3C))
        if self.dialect == "accutorr" and request in b"CL":
            return SimFrame(b">" if request == ord("C") else b"L:100,090,120,050,160,090,110,060,100,050\r\n>")
        if self._visit is None:
            try:
                self._visit = next(self.visits)
                self._polls = 0
            except StopIteration:
                self.finished = True
                return self._empty()
        v = self._visit
        self._polls += 1
        if self._polls <= v.stay:
            return self._measurement(v.patient, allow_faults=self._polls < v.stay, dedupe=True,
                                     function=request if self.dialect == "a5" else 0x37)
        if self._polls >= v.stay + v.gap:
            self._visit = None
        return self._empty()

    def _empty(self) -> SimFrame:
        if self.dialect == "accutorr":  # the monitor keeps showing its last measurement
            frame = SimFrame(b"", line=True)

            def show() -> None:
                frame.data = accutorr_encode(self._shown, elapsed=1)

            frame.on_sent = show
            return frame
        data = {"a5": lambda: a5_encode(Values()), "tanita-csv": lambda: tanita_encode(Values(weight_kg=0), None),
                "detecto": lambda: detecto_encode(Values())}[self.dialect]()

        def sent() -> None:
            self._last = None

        return SimFrame(data, line=self.dialect != "a5", on_sent=sent)

    def _measurement(self, p: Patient, allow_faults: bool, dedupe: bool, function: int = 0x37) -> SimFrame:
        allowed = (BYTE_FAULTS | {"nan", "out_of_range"}) if allow_faults else set()
        fault = self.plan.pick(allowed)
        v = values_for(self.dialect, p, fault)
        encode: dict[str, Callable[[], bytes]] = {
            "a5": lambda: a5_encode(v, function), "tanita-csv": lambda: tanita_encode(v, p),
            "detecto": lambda: detecto_encode(v), "accutorr": lambda: accutorr_encode(v),
        }
        if self.dialect == "a5" and function != 0x37:  # a partial answer carries one value only
            shown = Values(height_cm=v.height_cm) if function == 0x35 else Values(weight_kg=v.weight_kg)
        else:
            shown = v

        def sent() -> None:
            if fault in ("bad_checksum", "truncate", "disconnect", "nan"):
                self.bad_frames += 1
                return
            if not dedupe or shown != self._last:
                self.delivered.append(shown)
            self._last = shown
            if self.dialect == "accutorr":
                self._shown = shown

        return SimFrame(encode[self.dialect](), fault, line=self.dialect != "a5",
                        corrupt=_corrupt_for(self.dialect), on_sent=sent)
