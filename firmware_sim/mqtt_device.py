"""A simulated MQTT measurement device (docs/fieldbus.md §2), publishing to a real broker.

It writes its JSON with the standard library from the document — never with the driver's
codec. A script is a list of steps: :class:`Publish` sends a valid message (the device
numbers them 1, 2, 3, ...), the others inject faults: :class:`Duplicate` resends the last
valid message byte for byte (what a QoS 1 retry looks like), :class:`Malformed`,
:class:`NotJson`, :class:`WrongSchema`, :class:`UnknownCode`, :class:`WrongDevice`,
:class:`Oversize` send bad
messages, :class:`Flood` sends many valid ones back to back.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

log = logging.getLogger(__name__)

BASE_TIME = datetime(2024, 5, 1, 9, 30, 0)


@dataclass(frozen=True)
class Publish:
    """A valid message; ``values`` are (LOINC code, value, unit)."""

    values: tuple[tuple[str, float, str], ...] = (("8480-6", 120, "mmHg"), ("8462-4", 80, "mmHg"),
                                                  ("8867-4", 72, "/min"))
    kind: str = "blood_pressure"


@dataclass(frozen=True)
class Duplicate:
    """Resend the previous valid message unchanged."""


@dataclass(frozen=True)
class Malformed:
    """JSON cut off in the middle."""


@dataclass(frozen=True)
class NotJson:
    """Bytes that are not JSON at all."""


@dataclass(frozen=True)
class WrongSchema:
    """Valid JSON that breaks the schema (an unknown field)."""


@dataclass(frozen=True)
class UnknownCode:
    """A measurement with a code mchub does not know."""


@dataclass(frozen=True)
class WrongDevice:
    """A valid message that names another device than the one the topic belongs to."""


@dataclass(frozen=True)
class Oversize:
    """A message over the 4096-byte limit."""


@dataclass(frozen=True)
class Flood:
    """``count`` valid messages as fast as the broker takes them."""

    count: int = 50


Step = Publish | Duplicate | Malformed | NotJson | WrongSchema | UnknownCode | WrongDevice | Oversize | Flood


@dataclass
class MqttDevice:
    """Builds the payloads of a script and remembers what it sent."""

    device_id: str = "bp-3"
    seq: int = 0
    valid: list[int] = field(default_factory=list)  #: seq of every distinct valid message sent
    bad: list[bytes] = field(default_factory=list)  #: every bad payload sent
    _last: bytes = b""

    def _message(self, step: Publish) -> bytes:
        self.seq += 1
        body = {
            "device_id": self.device_id,
            "seq": self.seq,
            "time": (BASE_TIME + timedelta(seconds=self.seq)).isoformat(),
            "kind": step.kind,
            "measurements": [{"code": c, "value": v, "unit": u} for c, v, u in step.values],
        }
        self.valid.append(self.seq)
        self._last = json.dumps(body).encode()
        return self._last

    def payloads(self, step: Step) -> list[bytes]:
        """The payloads one step sends, in order."""
        if isinstance(step, Publish):
            return [self._message(step)]
        if isinstance(step, Flood):
            return [self._message(Publish()) for _ in range(step.count)]
        if isinstance(step, Duplicate):
            return [self._last] if self._last else []
        bad = self._bad(step)
        self.bad.append(bad)
        return [bad]

    def _bad(self, step: Step) -> bytes:
        good = {"device_id": self.device_id, "seq": self.seq + 1000, "time": BASE_TIME.isoformat(),
                "measurements": [{"code": "8480-6", "value": 120, "unit": "mmHg"}]}
        if isinstance(step, Malformed):
            return json.dumps(good).encode()[:25]
        if isinstance(step, NotJson):
            return b"\xff\xfe<measurement/>"
        if isinstance(step, WrongSchema):
            return json.dumps({**good, "patient_name": "x"}).encode()
        if isinstance(step, WrongDevice):
            return json.dumps({**good, "device_id": f"not-{self.device_id}"}).encode()
        if isinstance(step, UnknownCode):
            return json.dumps({**good, "measurements": [{"code": "1234-5", "value": 1, "unit": "cm"}]}).encode()
        return json.dumps({**good, "status": ["x" * 60] * 80}).encode()  # Oversize: ~5 kB


async def publish_script(device: MqttDevice, script: list[Step], host: str, port: int, topic: str,
                         interval: float = 0.0) -> None:
    """Connect to the broker and publish every step at QoS 1 (``{device_id}`` in ``topic`` is filled in)."""
    import asyncio

    import aiomqtt

    topic = topic.replace("{device_id}", device.device_id)
    async with aiomqtt.Client(host, port, identifier=f"sim-{device.device_id}") as client:
        for step in script:
            for payload in device.payloads(step):
                await client.publish(topic, payload, qos=1)
            if interval:
                await asyncio.sleep(interval)
    log.info("mqtt sim: %s published %d valid and %d bad messages on %s", device.device_id,
             len(device.valid), len(device.bad), topic)
