"""A test device for hub tests, loaded as a hub plugin (``[hub] plugins = ["tests.support.hubdriver"]``).

``driver = "test-line"``: connects to ``address:port`` over TCP where the test plays the
device. The device sends lines ``R <n> <sys> <dia> <pulse>`` (a BP reading numbered n) or
``C <n> <national id>`` (a card) or ``X <n> <sys> <code> <value> <unit>`` (a BP reading with a
second value of any code, e.g. one the cloud does not know); the driver answers ``A <n>`` only after the hub has
durably stored the event — like real devices that resend until acknowledged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from drivers.base import CardRead, Measurement, Sink
from drivers.errors import FrameError, TransportError
from protocol import codes
from protocol.model import Observation, Subject


def parse(line: bytes) -> tuple[int, Measurement | CardRead]:
    """One device line -> (n, event); raises FrameError."""
    parts = line.split()
    try:
        n = int(parts[1])
        if parts[0] == b"R":
            s, d, p = (float(x) for x in parts[2:5])
            return n, Measurement(kind="blood_pressure", device_time=f"n{n}", raw=line, observations=(
                Observation(code=codes.SYSTOLIC, value=s, unit="mm[Hg]"),
                Observation(code=codes.DIASTOLIC, value=d, unit="mm[Hg]"),
                Observation(code=codes.PULSE, value=p, unit="/min")))
        if parts[0] == b"X":
            return n, Measurement(kind="blood_pressure", device_time=f"n{n}", raw=line, observations=(
                Observation(code=codes.SYSTOLIC, value=float(parts[2]), unit="mm[Hg]"),
                Observation(code=parts[3].decode(), value=float(parts[4]), unit=parts[5].decode())))
        if parts[0] == b"C":
            return n, CardRead(subject=Subject(national_id=parts[2].decode(), name="测试", sex="2"), raw=line)
    except (IndexError, ValueError) as exc:
        raise FrameError(f"bad test line: {exc}", line) from exc
    raise FrameError("unknown test line", line)


class LineDriver:
    """TCP line device; each event is acknowledged to the device after it is committed."""

    def __init__(self, device_id: str, options: Mapping[str, Any]) -> None:
        self.device_id = device_id
        self.host, self.port = str(options.get("address", "127.0.0.1")), int(options["port"])

    async def run(self, sink: Sink) -> None:
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        except OSError as exc:
            raise TransportError(f"cannot reach test device: {exc}") from exc
        sink.state(True, f"{self.host}:{self.port}")
        tasks: set[asyncio.Task[None]] = set()

        async def store(n: int, event: Measurement | CardRead) -> None:
            await sink.event(event)
            writer.write(b"A %d\n" % n)

        try:
            while line := await reader.readline():
                try:
                    n, event = parse(line.strip())
                except FrameError as exc:
                    sink.frame_error(exc)
                    continue
                task = asyncio.create_task(store(n, event))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            raise TransportError("test device closed the connection")
        finally:
            for t in tasks:
                t.cancel()
            writer.close()


DRIVERS = {"test-line": LineDriver}
