"""The ID-card reader driver over a real pty: de-duplication, status answers, configuration."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from drivers.errors import ConfigError, TransportError
from drivers.idcard import status
from drivers.idcard.reader import IdCardReader
from firmware_sim.faults import FaultPlan, SimFrame
from firmware_sim.idcard_sim import CardVisit, IdCardReaderSim, answer
from firmware_sim.patients import make_patient
from firmware_sim.serial_host import PtyEndpoint, serve
from tests.conformance.serial_scenarios import RecordingSink
from tests.support.waiting import HANG_S


async def run_until(driver: IdCardReader, sim: Any, link: PtyEndpoint, done: Callable[[RecordingSink], bool]
                    ) -> RecordingSink:
    sink = RecordingSink()
    stop = asyncio.Event()
    server = asyncio.create_task(serve(sim, link, FaultPlan(), stop))
    runner = asyncio.create_task(driver.run(sink))
    try:
        async with asyncio.timeout(HANG_S):
            while not done(sink):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(sink.changed.wait(), 0.05)
                sink.changed.clear()
    finally:
        runner.cancel()
        stop.set()
        server.cancel()
        await asyncio.gather(runner, server, return_exceptions=True)
        link.close()
    return sink


@pytest.mark.parametrize(("window", "events"), [(60.0, 1), (0.0, 2)])
async def test_same_card_twice_within_the_window_is_one_event(tmp_path: Path, window: float, events: int,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    p = make_patient(random.Random(4), "adult", today=dt.date(2025, 3, 1))
    sim = IdCardReaderSim(iter([CardVisit(p, gap=1, stay=1), CardVisit(p, gap=2, stay=1)]), FaultPlan())
    link = PtyEndpoint(str(tmp_path / "tty"))
    driver = IdCardReader("r", {"address": link.device, "poll_interval": 0.01, "timeout": 0.3,
                                "dedupe_seconds": window})
    sink = await run_until(driver, sim, link, lambda s: sim.finished)
    assert len(sim.delivered) == 2  # the reader read it twice...
    assert len(sink.events) == events  # ...the hub sees one event inside the window
    assert sink.states[0] is True and sink.states[-1] is False
    assert p.national_id not in caplog.text and p.name not in caplog.text  # masked in logs
    assert "card read: " + p.national_id[:4] in caplog.text


class AngryReader:
    """Finds and selects a card, then refuses to read it (SW3 0x31)."""

    def __init__(self) -> None:
        self.answers = 0

    def tick(self, now: float) -> list[SimFrame]:
        return []

    def receive(self, data: bytes, now: float) -> list[SimFrame]:
        out = []
        for cmd in (data[i + 7:i + 9] for i in range(len(data)) if data.startswith(b"\xaa\xaa\xaa\x96\x69", i)):
            self.answers += 1
            sw3, body = {b"\x20\x01": (0x9F, bytes(4)), b"\x20\x02": (0x90, bytes(8))}.get(bytes(cmd), (0x31, b""))
            out.append(SimFrame(answer(sw3, body)))
        return out


async def test_error_status_is_typed_and_nothing_is_reported(tmp_path: Path) -> None:
    sim = AngryReader()
    link = PtyEndpoint(str(tmp_path / "tty"))
    driver = IdCardReader("r", {"address": link.device, "poll_interval": 0.01, "timeout": 0.3})
    sink = await run_until(driver, sim, link, lambda s: sim.answers >= 9)
    assert isinstance(driver.last_status, status.CardAuthenticationFailed)
    assert sink.events == [] and sink.errors == []


@pytest.mark.parametrize(("config", "message"), [
    ({"address": "/dev/x", "baudrate": "fast"}, "device 'reader-1'.baudrate: 'fast' is not an integer >= 1; "
                                                "fix: write baudrate = 115200"),
    ({"address": "/dev/x", "poll_interval": 7200}, "device 'reader-1'.poll_interval: 7200 is not a number in "
                                                   "0..3600; fix: write poll_interval = 0.3"),
])
def test_a_wrong_type_or_range_says_what_the_key_takes(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        IdCardReader("reader-1", config)
    assert str(err.value) == message


@pytest.mark.parametrize(("config", "key"), [
    ({}, "address"), ({"address": "/dev/x", "poll_interval": -1}, "poll_interval"),
    ({"address": "/dev/x", "timeout": "fast"}, "timeout"), ({"address": "/dev/x", "dedupe_seconds": True}, "dedupe"),
    ({"address": "h", "transport": "tcp"}, "port = 4001"), ({"address": "/dev/x", "transport": "usb"}, "transport"),
])
def test_configuration_errors_name_the_key(config: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        IdCardReader("reader-1", config)


async def test_missing_port_is_a_transport_error(tmp_path: Path) -> None:
    driver = IdCardReader("r", {"address": str(tmp_path / "no-such-tty")})
    with pytest.raises(TransportError, match="cannot open"):
        await driver.run(RecordingSink())
