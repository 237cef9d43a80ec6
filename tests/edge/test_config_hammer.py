"""50 rapid configuration changes while every kind of device streams (issue 19 finding 1).

A hub runs, in this test's event loop, one device of each transport, each on the real
thing: an ID-card reader polling a simulated SAM reader on a pseudo-terminal (the device
whose lost cancellation killed the other drivers in the field), an A5 height/weight
station pushing frames on a second pseudo-terminal, the real BLE driver against a
simulated BP monitor (:mod:`mchub.demo.blebridge`), a Modbus TCP station and an MQTT
device through the test's Mosquitto. While they stream numbered readings, the test
pushes 50 configuration changes as fast as the hub takes them: a thermometer added and
removed again (the incident), now and then a changed setting on a device that is being
changed anyway, some changes sent two at a time. Then:

* every unchanged device kept its link (never down longer than 5 s; in fact never down);
* the hub ran every change, the last configuration is the one running;
* every reading each device sent is stored exactly once.

Bounded: about 10 s of streaming; every wait has a generous guard and ends as soon as its
condition holds.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import socket
import time
from pathlib import Path

from edge.daemon import Hub
from firmware_sim import modbus_station as ms
from firmware_sim import mqtt_device as md
from firmware_sim.ble.encode import BloodPressure
from firmware_sim.faults import FaultPlan
from firmware_sim.modbus import ModbusTcpStation
from firmware_sim.serial_host import PtyEndpoint, serve
from firmware_sim.station_sim import Values, a5_encode
from tests.edge.conftest import make_hub_dir
from tests.edge.hubkit import started, wait_until
from tests.support.kioskrig import GatedCardReader
from tests.support.pty import PtyPair
from tests.support.refcloud import RefCloud
from tests.support.services import MosquittoServer, free_port
from tests.support.waiting import HANG_S

CHANGES = 50
READINGS = 40  #: per streaming device
REGAIN_S = 5.0  #: the promise: an unchanged device keeps or regains its link within this
GUARD = HANG_S  #: against a hung test only (the MQTT device connects per reading: slow on a loaded machine)
STEADY = ("card-1", "scale-1", "ble-1", "mb-1", "mq-1")

MODBUS = ('reading_kind = "height_weight"\ntable = "holding"\nready = { address = 0, ack = "echo", ack_address = 2 }\n'
          'sequence = { address = 1, type = "u16" }\nregisters = [\n'
          '  { address = 3, type = "u16", scale = 0.1, unit = "cm", code = "8302-2" },\n'
          '  { address = 4, type = "f32", word_order = "big", unit = "kg", code = "29463-7" },\n'
          '  { address = 6, type = "u16", scale = 0.1, unit = "kg/m2", code = "39156-5" },\n]\n')


def refusing_ports(n: int) -> tuple[list[socket.socket], list[int]]:
    """Loopback ports held bound but not listening: a connection to them is refused, and nobody else gets them."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    return socks, [s.getsockname()[1] for s in socks]


DEAD_PORTS: list[int] = []  #: filled by the test: ports of the thermometer and the changing device


def stations(card: str, scale: str, ble_port: int, mb_port: int, mq_port: int, change: int) -> str:
    """hub.toml stations for change number ``change`` (0: the starting configuration)."""
    out = (f'[[stations]]\nid = "room-1"\n'
           f'[[stations.devices]]\nid = "card-1"\ndriver = "idcard"\naddress = "{card}"\npoll_interval = 0.05\n'
           f'[[stations.devices]]\nid = "scale-1"\ndriver = "serial-station"\ndialect = "a5"\nmode = "push"\n'
           f'address = "{scale}"\n'
           f'[[stations.devices]]\nid = "ble-1"\ndriver = "sim-ble-bp"\ncontrol_port = {ble_port}\n'
           f'backoff_initial = 0.2\nbackoff_max = 1\n'
           f'[[stations]]\nid = "room-2"\n'
           f'[[stations.devices]]\nid = "mb-1"\ndriver = "modbus-tcp"\nhost = "127.0.0.1"\nport = {mb_port}\n'
           f'poll_interval = 0.05\nreconnect_max = 1\n{MODBUS}'
           f'[[stations.devices]]\nid = "mq-1"\ndriver = "mqtt"\nport = {mq_port}\nreconnect_max = 1\n'
           f'client_id = "hammer-mq-1"\n')
    if change % 2:  # the thermometer the admin adds, and removes with the next change
        out += (f'[[stations.devices]]\nid = "therm-1"\ndriver = "test-line"\naddress = "127.0.0.1"\n'
                f'port = {DEAD_PORTS[0]}\n')
    out += (f'[[stations.devices]]\nid = "moving-1"\ndriver = "test-line"\naddress = "127.0.0.1"\n'
            f'port = {DEAD_PORTS[1 + change // 5 % 2]}\n')  # changes every 5th push: this device restarts
    return out


class BleControl:
    """The control connection of the simulated BLE monitor: send a frame, wait for the driver's ``ok``."""

    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.port = 0

    async def start(self) -> BleControl:
        self.server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.connected.set()

    async def send(self, frame: bytes) -> None:
        async with asyncio.timeout(GUARD):
            await self.connected.wait()
            assert self.reader is not None and self.writer is not None
            self.writer.write(f"2a35 {frame.hex()}\n".encode())
            await self.writer.drain()
            assert await self.reader.readline() == b"ok\n"

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.server.close()


async def stream_all(scale: PtyPair, ble: BleControl, station: ms.Station, mq_port: int,
                     sent: dict[str, list[float]]) -> None:
    """Each streaming device sends READINGS numbered readings over about 8 s."""
    async def scale_stream() -> None:
        for n in range(READINGS):
            height = 120.0 + n
            os.write(scale.master, a5_encode(Values(height_cm=height, weight_kg=40.0)))
            sent["scale-1"].append(height)
            await asyncio.sleep(0.2)  # a person per frame (each A5 frame is complete: no idle flush involved)

    async def ble_stream() -> None:
        for n in range(READINGS):
            await ble.send(BloodPressure(100 + n, 70, 80, pulse=70).encode())
            sent["ble-1"].append(100.0 + n)
            await asyncio.sleep(0.2)

    async def modbus_stream() -> None:
        for n in range(READINGS):
            station.add(ms.Measure(150.0 + n, 50.0, 22.0))
            sent["mb-1"].append(150.0 + n)
            await asyncio.sleep(0.2)

    async def mqtt_stream() -> None:
        device = md.MqttDevice(device_id="mq-1")
        for n in range(READINGS):
            step = md.Publish(values=(("8480-6", 90 + n, "mmHg"), ("8462-4", 60, "mmHg")))
            await md.publish_script(device, [step], "127.0.0.1", mq_port, "clinic/{device_id}/measurement")
            sent["mq-1"].append(90.0 + n)
            await asyncio.sleep(0.2)

    await asyncio.gather(scale_stream(), ble_stream(), modbus_stream(), mqtt_stream())


def stored(hub: Hub) -> dict[str, list[float]]:
    """First observation value of every reading in hub.db, by device."""
    from protocol.model import Reading

    out: dict[str, list[float]] = collections.defaultdict(list)
    for rec in hub.reader.records(1, 1_000_000):
        if isinstance(rec, Reading):
            out[rec.device_id].append(rec.observations[0].value)
    return out


async def test_fifty_rapid_config_changes_leave_unchanged_devices_alone_and_lose_nothing(
        tmp_path: Path, refcloud: RefCloud, mosquitto: MosquittoServer) -> None:
    card_end = PtyEndpoint()
    stop_sims = asyncio.Event()
    card_sim = asyncio.create_task(serve(GatedCardReader(), card_end, FaultPlan({}), stop_sims, avoid=b"\xaa"))
    scale = PtyPair.open()
    ble = await BleControl().start()
    station = ms.Station()
    mb_port = free_port()
    ports = (card_end.device, scale.device, ble.port, mb_port, mosquitto.port)
    dead_socks, DEAD_PORTS[:] = refusing_ports(3)
    cfg_path = make_hub_dir(tmp_path / "hub", refcloud,
                            extra='plugins = ["mchub.demo.blebridge", "tests.support.hubdriver"]',
                            stations=stations(*ports, change=0))
    head = cfg_path.read_text().split("[[stations]]")[0]
    hub: Hub | None = None
    down_since: dict[str, float] = {}
    longest_down = collections.Counter[str]()
    try:
        async with ModbusTcpStation(station, mb_port):
            hub = await started(cfg_path)
            sup = hub.supervisor
            await wait_until(lambda: all(sup.health[d].connected for d in STEADY), GUARD)
            tasks_before = {d: sup._tasks[d] for d in STEADY}

            watching = True

            async def watch() -> None:  # link state of the unchanged devices, every 20 ms
                while watching:
                    now = time.monotonic()
                    for d in STEADY:
                        h = hub.supervisor.health.get(d) if hub else None
                        if h is not None and h.connected:
                            down_since.pop(d, None)
                        else:
                            down_since.setdefault(d, now)
                            longest_down[d] = max(longest_down[d], int((now - down_since[d]) * 1000))
                    await asyncio.sleep(0.02)

            watcher = asyncio.create_task(watch())
            sent: dict[str, list[float]] = collections.defaultdict(list)
            streaming = asyncio.create_task(stream_all(scale, ble, station, mosquitto.port, sent))

            async def push(change: int) -> None:  # hub.toml replaced atomically, as an editor or deploy tool does
                tmp = cfg_path.with_name(f"hub.toml.{change}")
                tmp.write_text(head + stations(*ports, change=change), encoding="utf-8")
                tmp.replace(cfg_path)
                assert hub is not None
                await asyncio.wait_for(hub.reload_config(), GUARD)

            started_at = time.monotonic()
            change = 1
            while change <= CHANGES:
                if change % 10 == 3 and change < CHANGES:  # two at once: the hub serialises them
                    await asyncio.gather(push(change), push(change + 1))
                    change += 2
                else:
                    await push(change)
                    change += 1
                await asyncio.sleep(0.12)  # the pushes span the whole stream (about 8 s)
            pushed_s = time.monotonic() - started_at
            await asyncio.wait_for(streaming, GUARD)
            expected = {d: sorted(v) for d, v in sent.items()}
            await wait_until(lambda: {d: sorted(v) for d, v in stored(hub).items() if d in expected} == expected
                             or any(len(stored(hub)[d]) > len(v) for d, v in expected.items()), GUARD)
            watching = False
            await watcher

            got = stored(hub)
            for d, values in expected.items():
                assert len(values) == READINGS
                dupes = [v for v, n in collections.Counter(got[d]).items() if n > 1]
                assert not dupes, f"{d}: readings stored twice: {dupes}"
                assert sorted(got[d]) == values, f"{d}: lost {sorted(set(values) - set(got[d]))}"
            assert all(ms_ < REGAIN_S * 1000 for ms_ in longest_down.values()), longest_down
            assert not longest_down, f"unchanged devices lost their link: {dict(longest_down)} ms"
            assert all(hub.supervisor._tasks[d] is tasks_before[d] for d in STEADY)  # never restarted
            assert "therm-1" not in hub.supervisor.health  # change 50 (even) removed it again
            assert [d.id for d in hub.cfg.devices()] == [*STEADY, "moving-1"]
            # what the hub tells the cloud with every batch (moving-1 points at a refusing port)
            assert hub._sync_report() == {"X-Mchub-Devices-Down": "moving-1"}
            assert hub.config_status()["state"] == "local"
            print(f"{CHANGES} changes in {pushed_s:.1f} s while 4 devices streamed {4 * READINGS} readings: "
                  f"0 lost, 0 duplicated; longest link loss of an unchanged device: "
                  f"{max(longest_down.values(), default=0)} ms")
    finally:
        if hub is not None:
            await asyncio.wait_for(hub.stop(), GUARD)
        stop_sims.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(card_sim, 10)
        card_end.close()
        scale.close()
        ble.close()
        for sock in dead_socks:
            sock.close()
