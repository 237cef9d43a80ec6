"""A synthetic device for tests and benchmarks, loaded as a hub plugin (never shipped in ``edge``).

``[hub] plugins = ["tests.support.synthetic"]``, then ``driver = "synthetic"``: it invents
plausible blood-pressure readings at ``rate`` per second (default 1), up to ``count``
readings (default: unbounded), each flagged ``simulated`` (:data:`protocol.model.SIMULATED`)
so the cloud keeps the mark and never sends them to the HIS or the MCH platform unless it
is a training rig (issue 19 finding 2). Used to measure a hub under load and by tests that
need readings without a device.
"""

from __future__ import annotations

import asyncio
import random
import struct
from collections.abc import Mapping
from typing import Any

from drivers.base import Measurement, Sink
from drivers.errors import ConfigError as DriverConfigError
from protocol import codes
from protocol.model import SIMULATED, Observation


def bp_measurement(n: int, rng: random.Random) -> Measurement:
    """The n-th synthetic blood-pressure reading (device time and raw frame carry ``n``)."""
    sys_, dia, pulse = rng.randint(95, 175), rng.randint(55, 105), rng.randint(52, 110)
    return Measurement(
        kind="blood_pressure",
        observations=(
            Observation(code=codes.SYSTOLIC, value=float(sys_), unit="mm[Hg]"),
            Observation(code=codes.DIASTOLIC, value=float(dia), unit="mm[Hg]"),
            Observation(code=codes.PULSE, value=float(pulse), unit="/min"),
        ),
        device_time=None,
        status=(SIMULATED,),
        raw=struct.pack(">BHHHI", 0x16, sys_, dia, pulse, n),
    )


class SyntheticDriver:
    """Emits readings at a fixed rate; never fails."""

    def __init__(self, device_id: str, options: Mapping[str, Any]) -> None:
        self.device_id = device_id
        self.rate = float(options.get("rate", 1.0))
        self.count = int(options.get("count", 0))
        if self.rate < 0 or self.count < 0:
            raise DriverConfigError("rate and count must not be negative")
        self._n = 0
        self._rng = random.Random(device_id)

    async def run(self, sink: Sink) -> None:
        """Produce readings until cancelled (or ``count`` is reached)."""
        sink.state(True, "synthetic")
        while not self.count or self._n < self.count:
            self._n += 1
            await sink.event(bp_measurement(self._n, self._rng))
            await asyncio.sleep(1.0 / self.rate if self.rate > 0 else 0)
        await asyncio.Event().wait()


DRIVERS = {"synthetic": SyntheticDriver}
