"""Restart loop (issue 17, finding 1): hub restarts never store a reading twice or bind it to the wrong patient.

Real hub processes (``python -m mchub edge run``), killed with SIGKILL and stopped with
SIGTERM while patients move between stations and devices are mid-measurement. The
devices keep showing their last result, as the real ones do, on real ptys and sockets:

* room-1: an ID-card reader (:class:`firmware_sim.idcard_sim.IdCardReaderSim`, the card
  stays on it until the next patient's) and an Accutorr-style BP monitor (poll mode,
  answers every ``P`` with its last measurement and the minutes since it);
* room-2: an ID-card reader and an A5 height/weight station in poll mode (the patient
  stands on it until the test lets her step off);
* a Modbus TCP station (:mod:`firmware_sim.modbus`) with a reading on show: killed
  between storing and acknowledging, and reloaded with SIGHUP.

At the end the hub's store must hold each patient's readings exactly once, each bound to
that patient's session at that station, and one session per patient and station.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import dataclasses
import datetime as dt
import json
import random
import signal
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from drivers.modbus.example import EXAMPLE_CONFIG
from edge import identity
from edge.store.reader import Reader
from firmware_sim import modbus_station as ms
from firmware_sim.faults import FaultPlan, SimFrame
from firmware_sim.idcard_sim import CardVisit
from firmware_sim.modbus import ModbusTcpStation
from firmware_sim.patients import Patient, make_patient
from firmware_sim.serial_host import PtyEndpoint, serve
from firmware_sim.station_sim import Values, a5_encode, accutorr_encode
from protocol import codes
from protocol.model import Reading, SessionOpened, Subject
from tests.edge.conftest import make_hub_dir
from tests.edge.test_crash import start_hub
from tests.support.kioskrig import GatedCardReader
from tests.support.refcloud import RefCloud
from tests.support.services import free_port

ROUNDS = 8  #: patients through the two rooms; one hub restart per round (SIGKILL / SIGTERM alternating)
GUARD = 60.0  #: a guard against a hung test, never a performance assertion


class HeldCard(GatedCardReader):
    """A reader whose card stays on it until the next patient's card replaces it."""

    def hold(self, p: Patient) -> None:
        """Take the card lying there away (at the next poll) and put ``p``'s down."""
        if self._visit is not None:
            self._left = 0
        self.queue.append(CardVisit(p, gap=4, stay=10**9))


class Monitor:
    """Accutorr-style BP monitor: answers every ``P`` with its last measurement and its age in minutes."""

    def __init__(self) -> None:
        self.shown = Values()
        self.measured_at = 0.0

    def measure(self, p: Patient, now: float) -> None:
        self.shown = Values(systolic=p.systolic, diastolic=p.diastolic, mean=p.mean_pressure, pulse=p.pulse)
        self.measured_at = now

    def receive(self, data: bytes, now: float) -> list[SimFrame]:
        return [SimFrame(accutorr_encode(self.shown, int((now - self.measured_at) // 60)), line=True)
                for b in data if b == ord("P")]

    def tick(self, now: float) -> list[SimFrame]:
        return []


class Scale:
    """A5 station in poll mode: answers each request with whoever stands on it (zeros: nobody)."""

    def __init__(self) -> None:
        self.on: Patient | None = None
        self._buf = bytearray()

    def receive(self, data: bytes, now: float) -> list[SimFrame]:
        self._buf += data
        out: list[SimFrame] = []
        while (start := self._buf.find(b"\xa5\x5a")) >= 0 and len(self._buf) >= start + 3:
            end = start + 3 + self._buf[start + 2]
            if len(self._buf) < end:
                break
            fn = self._buf[start + 4]
            del self._buf[:end]
            p = self.on
            v = Values() if p is None else Values(height_cm=p.height_cm, weight_kg=p.weight_kg)
            out.append(SimFrame(a5_encode(v, fn if fn in (0x35, 0x36, 0x37) else 0x37)))
        return out

    def tick(self, now: float) -> list[SimFrame]:
        return []


def patients(n: int) -> list[Patient]:
    """Distinct people with distinct values (so a reading's values name its patient)."""
    out: list[Patient] = []
    for i in range(n):
        p = make_patient(random.Random(1000 + i), "adult", today=dt.date(2026, 12, 6))
        out.append(dataclasses.replace(p, systolic=110 + i, diastolic=70 + i, pulse=60 + i,
                                       height_cm=150.0 + i, weight_kg=50.0 + i))
    return out


def query(db: Path, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    except sqlite3.OperationalError:  # the hub has not created it yet
        return []
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError:  # the hub is creating the tables right now
        return []
    finally:
        conn.close()


def tail(log: Path | None) -> str:
    return log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""


def at_least(db: Path, device: str, n: int) -> Callable[[], bool]:
    return lambda: count(db, device) >= n


def has_session(db: Path, station: str, tag: str | None) -> Callable[[], bool]:
    return lambda: open_session(db, station, tag)


async def until(condition: Callable[[], bool], what: str, proc: subprocess.Popen[bytes] | None = None,
                log: Path | None = None) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GUARD
    while not condition():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the hub exited ({proc.returncode}) while waiting for {what}; log: {tail(log)}")
        if loop.time() > deadline:
            pytest.fail(f"gave up waiting for {what}; log: {tail(log)}")
        await asyncio.sleep(0.05)


async def stop_hub(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    proc.send_signal(sig)
    await until(lambda: proc.poll() is not None, f"the hub to exit on {sig.name}")
    assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 0)


class Rig:
    """The simulated devices, served in the test's event loop."""

    def __init__(self) -> None:
        self.card1, self.card2, self.monitor, self.scale = HeldCard(), HeldCard(), Monitor(), Scale()
        self.ends = [PtyEndpoint() for _ in range(4)]
        self.stop = asyncio.Event()
        plan = FaultPlan({})
        self.tasks = [asyncio.create_task(serve(dev, end, plan, self.stop, avoid=avoid))
                      for dev, end, avoid in zip((self.card1, self.card2, self.monitor, self.scale), self.ends,
                                                 (b"\xaa", b"\xaa", b"", b"\xa5"), strict=True)]

    def stations(self) -> str:
        c1, c2, bp, sc = (e.device for e in self.ends)
        return (f'[[stations]]\nid = "room-1"\nsession_window_s = 600\n'
                f'[[stations.devices]]\nid = "card-1"\ndriver = "idcard"\naddress = "{c1}"\npoll_interval = 0.1\n'
                f'[[stations.devices]]\nid = "bp-1"\ndriver = "serial-bp"\naddress = "{bp}"\npoll_interval = 0.1\n'
                f'[[stations]]\nid = "room-2"\nsession_window_s = 600\n'
                f'[[stations.devices]]\nid = "card-2"\ndriver = "idcard"\naddress = "{c2}"\npoll_interval = 0.1\n'
                f'[[stations.devices]]\nid = "scale-1"\ndriver = "serial-station"\ndialect = "a5"\nmode = "poll"\n'
                f'address = "{sc}"\npoll_interval = 0.1\n')

    async def close(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for end in self.ends:
            end.close()


def subject(p: Patient) -> Subject:
    return Subject(national_id=p.national_id, name=p.name)


def obs_value(r: Reading, code: str) -> float | None:
    return next((o.value for o in r.observations if o.code == code), None)


def synced(db: Path) -> bool:
    rows = query(db, "SELECT next_seq, acked_through FROM sync_state")
    return bool(rows) and rows[0][1] == int(rows[0][0]) - 1  # type: ignore[call-overload]


def open_session(db: Path, station: str, tag: str | None) -> bool:
    return bool(query(db, "SELECT 1 FROM sessions WHERE station_id = ? AND subject_tag = ? AND closed_at IS NULL",
                      (station, tag)))


def count(db: Path, device: str) -> int:
    rows = query(db, "SELECT count(*) FROM records WHERE type = 0 AND device_id = ?", (device,))
    return int(rows[0][0]) if rows else 0  # type: ignore[call-overload]


@pytest.mark.slow
async def test_restarts_mid_visit_store_each_reading_once_on_the_right_patient(tmp_path: Path,
                                                                               refcloud: RefCloud) -> None:
    rig = Rig()
    cfg = make_hub_dir(tmp_path / "hub", refcloud, stations=rig.stations())
    ident = identity.load(tmp_path / "hub" / "identity")
    db, log = tmp_path / "hub" / "data" / "hub.db", tmp_path / "hub.log"
    people = patients(ROUNDS + 1)  # the last one only comes to room-1 after the last restart
    loop = asyncio.get_running_loop()
    proc = start_hub(cfg, log)
    restarts: list[str] = []
    try:
        for i, p in enumerate(people[:ROUNDS]):
            prev = people[i - 1] if i else None
            # p comes to room-1; the previous patient moves on to room-2
            rig.card1.hold(p)
            if prev is not None:
                rig.scale.on = None  # the one before steps off the scale
                rig.card2.hold(prev)
            tag1 = ident.subject_tag(subject(p))
            await until(has_session(db, "room-1", tag1), "the session in room-1", proc, log)
            if prev is not None:
                tag2 = ident.subject_tag(subject(prev))
                await until(has_session(db, "room-2", tag2), "the session in room-2", proc, log)
            # measurements start: the monitor measures p, prev stands on the scale
            rig.monitor.measure(p, loop.time())
            if prev is not None:
                rig.scale.on = prev
            # even rounds: stop the hub mid-measurement (not before each device has stored one reading: a
            # device the hub has no memory of keeps its first repeat unbound, tests/edge/test_repeats.py);
            # odd rounds: once both readings are stored, while the devices still show them
            mid = i > 0 and i % 2 == 0
            if not mid:
                await until(at_least(db, "bp-1", i + 1), "the BP reading", proc, log)
                if prev is not None:
                    await until(at_least(db, "scale-1", i), "the scale reading", proc, log)
            sig = signal.SIGKILL if i % 4 < 2 else signal.SIGTERM
            await stop_hub(proc, sig)
            restarts.append(f"{sig.name}{' mid-measurement' if mid else ''}")
            proc = start_hub(cfg, log)  # the monitor still shows p's result, prev still stands on the scale
            await until(at_least(db, "bp-1", i + 1), "the BP reading after the restart", proc, log)
            if prev is not None:
                await until(at_least(db, "scale-1", i), "the scale reading after the restart", proc, log)
        rig.card1.hold(people[ROUNDS])  # one more visit, so the last restart's repeats had time to show up
        rig.scale.on = None
        last = ident.subject_tag(subject(people[ROUNDS]))
        await until(has_session(db, "room-1", last), "the last card", proc, log)
        await until(lambda: synced(db), "the cloud to acknowledge everything", proc, log)
        await stop_hub(proc, signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await rig.close()

    reader = Reader(db, ident.decrypt)
    try:
        records = reader.records(1, 100_000)
    finally:
        reader.close()
    who = {r.session_id: (r.station_id, r.subject.national_id) for r in records if isinstance(r, SessionOpened)}
    by_id = {p.national_id: p for p in people}
    opened = collections.Counter(who.values())
    assert all(n == 1 for n in opened.values()), f"a visit was split by a restart: {opened}"
    bp = [(obs_value(r, codes.SYSTOLIC), who.get(r.session_id or "")) for r in records
          if isinstance(r, Reading) and r.device_id == "bp-1"]
    hw = [(obs_value(r, codes.WEIGHT), who.get(r.session_id or "")) for r in records
          if isinstance(r, Reading) and r.device_id == "scale-1"]
    assert len(bp) == ROUNDS and len(hw) == ROUNDS - 1, f"duplicates after {restarts}: bp {bp}, scale {hw}"
    for value, (station, nid) in [(v, s) for v, s in bp if s is not None]:
        assert station == "room-1" and value == by_id[nid].systolic, f"BP {value} bound to the wrong patient"
    for value, (station, nid) in [(v, s) for v, s in hw if s is not None]:
        assert station == "room-2" and value == by_id[nid].weight_kg, f"weight {value} bound to the wrong patient"
    assert all(s is not None for _, s in bp + hw), "every reading here was taken during its patient's visit"
    cloud = [json.loads(r[3]) for r in refcloud.records("clinic-1") if r[2] == "Reading"]
    assert sorted((c["device_id"], c["session_id"]) for c in cloud) == sorted(
        (r.device_id, r.session_id) for r in records if isinstance(r, Reading))  # the cloud got the same, once
    assert restarts.count("SIGKILL") + restarts.count("SIGKILL mid-measurement") == ROUNDS // 2


MODBUS_STATION = ('[[stations]]\nid = "room-3"\n[[stations.devices]]\nid = "hw-1"\ndriver = "modbus-tcp"\n'
                  'host = "127.0.0.1"\nport = {port}\npoll_interval = 0.05\n{regmap}')


def regmap_toml(ack: str) -> str:
    cfg = copy.deepcopy(EXAMPLE_CONFIG)
    ready = f'address = 0\nack = "{ack}"\n' + ('ack_address = 2\n' if ack == "echo" else "")
    regs = "".join(
        "[[stations.devices.registers]]\n" + "".join(f'{k} = {v!r}\n'.replace("'", '"') for k, v in r.items())
        for r in cfg["registers"])
    return (f'table = "holding"\nreading_kind = "height_weight"\n[stations.devices.ready]\n{ready}'
            f'[stations.devices.sequence]\naddress = 1\ntype = "u16"\n{regs}')


async def reload(proc: subprocess.Popen[bytes], db: Path, log: Path, n: int) -> None:
    """SIGHUP; returns once the hub audited the n-th reload (its new drivers are running)."""
    proc.send_signal(signal.SIGHUP)
    await until(lambda: len(query(db, "SELECT 1 FROM audit WHERE kind = 'reload_config'")) >= n,
                f"reload {n}", proc, log)


async def polled(station: ms.Station, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Returns once the driver has read the station 3 more times: the first read's event is handled
    (the driver waits for the hub before it polls again)."""
    base = station.requests
    await until(lambda: station.requests >= base + 3, "three more polls", proc, log)


@pytest.mark.slow
async def test_modbus_store_then_crash_before_the_ack_and_reloads_store_once(tmp_path: Path,
                                                                             refcloud: RefCloud) -> None:
    """Echo handshake: SIGKILL after the commit, before the ack; then a station whose reading stays on show."""
    port = free_port()
    station = ms.Station([ms.Measure(165.5, 66.4, 24.4)])
    db, log = tmp_path / "hub" / "data" / "hub.db", tmp_path / "hub.log"
    async with ModbusTcpStation(station, port):
        cfg = make_hub_dir(tmp_path / "hub", refcloud,
                           stations=MODBUS_STATION.format(port=port, regmap=regmap_toml("echo")))
        proc = start_hub(cfg, log, MCHUB_CRASH_AT="after_commit", MCHUB_CRASH_AFTER="1")
        await until(lambda: proc.poll() is not None, "the hub to die right after storing the reading")
        assert proc.returncode == -signal.SIGKILL
        assert count(db, "hw-1") == 1 and station.acknowledged == []  # stored, never acknowledged
        proc = start_hub(cfg, log)
        try:
            await until(lambda: station.acknowledged == [1], "the acknowledgement", proc, log)
            assert count(db, "hw-1") == 1  # acknowledged now, not stored again
            # the station is set never to clear (ack = "none"): the next reading stays on show
            cfg.write_text(cfg.read_text().replace('ack = "echo"\nack_address = 2\n', 'ack = "none"\n'))
            await reload(proc, db, log, 1)
            station.add(ms.Measure(170.0, 70.0, 24.2))
            await until(lambda: count(db, "hw-1") == 2, "the second reading", proc, log)
            for n in range(2, 5):  # every reload builds a new driver that sees the reading on show
                await reload(proc, db, log, n)
                await polled(station, proc, log)
            await stop_hub(proc, signal.SIGKILL)
            proc = start_hub(cfg, log)
            await polled(station, proc, log)
            await stop_hub(proc, signal.SIGTERM)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    weights = [r[0] for r in query(db, "SELECT seq FROM records WHERE type = 0 AND device_id = 'hw-1'")]
    assert len(weights) == 2, f"the Modbus reading on show was stored again: seqs {weights}"
