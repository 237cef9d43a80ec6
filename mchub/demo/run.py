"""The demo orchestrator: set up, run, take a hub offline and back, wind down, reconcile.

Phases:

1. **setup** — cloud (``mchub cloud init`` + ``serve``), a site, two hubs registered with
   the cloud, each with two stations of three serial devices on ptys, the hospital peers;
2. **live** — patients at every station; one hub loses its network for a while and gets
   it back; the progress block is redrawn every second;
3. **wind down** (``--duration`` reached, or the first Ctrl-C) — the visits under way
   finish, both hubs drain their queues, outbound messages are delivered;
4. **summary** — reconciliation against the cloud's database; exit 1 if anything was
   lost or duplicated.

Every child process and simulator is stopped in ``finally``, on success, on error and on
a second Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import random
import re
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from firmware_sim.netfaults import FaultProxy
from firmware_sim.station_sim import Values
from mchub.demo import enroll, parts, progress
from mchub.demo.cloudside import DemoCloud, DemoError
from mchub.demo.cloudstats import CloudCounts, CloudReader
from mchub.demo.devices import StationRig, build_rig
from mchub.demo.display import Display, clock
from mchub.demo.hubside import DemoHub
from mchub.demo.peers import Peer, build_peers
from mchub.demo.reconcile import Reconciliation, compare
from mchub.demo.scenario import Tally, run_station
from mchub.demo.script import scripted_patients
from mchub.demo.setup import SITE_ID, SITE_NAME, enroll_hubs, ensure_empty
from mchub.procs import ProcessGroup

log = logging.getLogger("mchub.demo")
HUBS = {"hub-A": ("room-1", "room-2"), "hub-B": ("room-1", "room-2")}
STATION_NAMES = ("一诊室", "二诊室")  #: what the kiosk and the status page call room-1, room-2
FLAKY_HUB = "hub-B"
DRAIN_S = 90.0  #: how long the wind-down waits for the hubs to sync everything


@dataclass
class Options:
    """``mchub demo`` options (see ``mchub demo --help``)."""

    duration: float | None = None
    workdir: Path | None = None
    keep: bool = False
    seed: int = 1
    pace: float = 3.0
    offline_at: float | None = None
    offline_for: float | None = None
    postgres: str | None = None
    mqtt: str | None = None
    plain: bool = False
    faults: str = ""
    summary_json: Path | None = None


@dataclass
class Demo:
    """Everything the demo started (so ``finally`` can stop it)."""

    opts: Options
    workdir: Path
    display: Display
    group: ProcessGroup
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    cloud: DemoCloud | None = None
    hubs: list[DemoHub] = field(default_factory=list)
    peers: list[Peer] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)
    reader: CloudReader | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    offline_since: float | None = None
    admin: enroll.AdminLogin | None = None  #: the demo admin (when this build enrolls with tokens)

    @property
    def rigs(self) -> list[tuple[DemoHub, StationRig]]:
        """Every station of every hub."""
        return [(h, r) for h in self.hubs for r in h.rigs]

    def elapsed(self) -> float:
        """Seconds since the live phase began."""
        return time.monotonic() - self.started


def _workdir(opts: Options) -> tuple[Path, bool]:
    if opts.workdir is None:
        return Path(tempfile.mkdtemp(prefix="mchub-demo-")), True
    wd = opts.workdir.resolve()
    if wd.exists() and any(wd.iterdir()):
        raise DemoError(f"--workdir {wd} is not empty; give a new or empty directory (the demo creates "
                        "cloud/, hub-A/, hub-B/ and logs/ in it)")
    wd.mkdir(parents=True, exist_ok=True)
    return wd, False


def _database_url(opts: Options, workdir: Path) -> str:
    if opts.postgres:
        return opts.postgres
    return f"sqlite:///{workdir / 'cloud' / 'cloud.db'}"


def _mqtt(opts: Options) -> tuple[str, int] | None:
    if not opts.mqtt:
        return None
    host, _, port = opts.mqtt.rpartition(":")
    if not port.isdigit():
        raise DemoError(f"--mqtt {opts.mqtt!r}: write HOST:PORT, e.g. 127.0.0.1:1883")
    return host or "127.0.0.1", int(port)


async def setup(demo: Demo, http: aiohttp.ClientSession) -> None:
    """Phase 1: cloud, site, hubs, devices, peers."""
    opts, say = demo.opts, demo.display.event
    cloud = DemoCloud(demo.workdir / "cloud", _database_url(opts, demo.workdir), _mqtt(opts))
    for peer in demo.peers:
        if peer.available:
            await peer.start(cloud)
    cloud.extra_toml += [p.cloud_toml for p in demo.peers if p.available and p.cloud_toml]
    cloud.extra_toml.append(parts.cloud_web_toml())
    demo.cloud = cloud
    tokens = enroll.available()
    if tokens:
        await enroll.prepare_cloud(cloud)
    cloud.write_config()
    await cloud.init()
    if tokens:
        demo.admin = await enroll.create_admin(cloud)
    where = "PostgreSQL" if opts.postgres else f"SQLite ({cloud.directory / 'cloud.db'})"
    say(f"云端 cloud: starting `mchub cloud serve` on {where} ...")
    await cloud.start(demo.group)
    say(f"云端 cloud: ready at {cloud.url}")
    demo.reader = CloudReader(cloud.database_url)
    mqtt = _mqtt(opts)
    for i, (label, stations) in enumerate(HUBS.items()):
        hub_dir = demo.workdir / label
        rigs = [build_rig(s, hub_dir / "tty", seed=opts.seed * 100 + 10 * i + j, faults=opts.faults,
                          name=STATION_NAMES[j], ble_bp=j == 0)  # the first station: a Bluetooth monitor
                for j, s in enumerate(stations)]
        proxy = await FaultProxy(target_port=cloud.port).start()
        hub = DemoHub(label, hub_dir, rigs, proxy, mqtt)
        demo.hubs.append(hub)
        for rig in rigs:
            await rig.start()
    await ensure_empty(http, cloud)
    for hub in demo.hubs:
        hub.directory.mkdir(parents=True, exist_ok=True)
        hub.write_config()
    if demo.admin is not None:
        how = await enroll.enroll_with_tokens(http, cloud, demo.admin, demo.hubs, SITE_ID, SITE_NAME)
    else:
        how = await enroll_hubs(http, cloud, demo.hubs)
    say(f"机构 site {SITE_ID}; 网关 hubs {', '.join(h.name for h in demo.hubs)} {how}")
    await asyncio.gather(*(hub.start(demo.group) for hub in demo.hubs))
    for hub in demo.hubs:
        n = sum(len(r.devices) for r in hub.rigs)
        say(f"网关 {hub.name}: running, {len(hub.rigs)} stations, {n} serial devices on ptys; "
            f"status {hub.url}/api/status")


def urls(demo: Demo) -> str:
    """Where to look while the demo runs."""
    assert demo.cloud is not None
    lines = ["", "打开 open (loopback only):"]
    for hub in demo.hubs:
        if parts.hub_pages():
            kiosks = "  ".join(f"{hub.url}/kiosk/{r.station_id}" for r in hub.rigs)
            lines.append(f"  自助机 kiosk          {hub.name}: {kiosks}")
            lines.append(f"  网关状态页 status page {hub.name}: {hub.url}/  (护士 staff {parts.STAFF_USER} / "
                         f"PIN {parts.STAFF_PIN})")
        else:
            lines.append(f"  网关状态 hub status   {hub.name}: {hub.url}/api/status")
    lines.append(f"  云端 cloud API       {demo.cloud.url}/openapi.json  (metrics: {demo.cloud.url}/metrics)")
    lines.append(f"  管理 admin API       {demo.cloud.url}/admin/v1/hubs  (Authorization: Bearer "
                 f"$(cat {demo.cloud.directory / 'admin.token'}))")
    missing = ([] if parts.hub_pages() else ["自助机 kiosk", "状态页 status pages"]) + \
        ([] if parts.cloud_pages() and demo.admin else ["仪表盘 dashboard", "管理台 admin console"])
    if parts.cloud_pages() and demo.admin is not None:
        lines.append(f"  仪表盘 dashboard      {demo.cloud.url}/ui/dashboard")
        lines.append(f"  管理台 admin console  {demo.cloud.url}/ui/admin")
    if missing:
        lines.append(f"  {', '.join(missing)}: 尚未提供 not yet available in this build")
    if demo.admin is not None:
        lines.append(f"  管理员 admin          {demo.admin.username} / {demo.admin.password} + 6-digit code "
                     f"(shown live below; TOTP secret {demo.admin.secret} for an authenticator app)")
    lines.append(f"  文件与日志 files and logs: {demo.workdir} (logs/*.log)")
    return "\n".join(lines) + "\n"


async def check_urls(http: aiohttp.ClientSession, text: str, say: Any) -> None:
    """Every URL printed answers (a login page or a redirect is fine; 404 or 5xx is not)."""
    for url in sorted(set(re.findall(r"http://127\.0\.0\.1:\d+/[^\s)]*", text))):
        try:
            async with http.get(url, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=5)) as resp:
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            say(f"注意 note: {url} does not answer ({exc})")
            continue
        if status == 404 or status >= 500:
            say(f"注意 note: {url} answers HTTP {status}")


async def refresh(demo: Demo, http: aiohttp.ClientSession) -> tuple[list[Any], CloudCounts]:
    """Poll hubs and cloud, let the peers act, redraw."""
    assert demo.reader is not None
    statuses = await asyncio.gather(*(h.status(http) for h in demo.hubs))
    counts = await demo.reader.counts()
    for peer in demo.peers:
        if peer.available:
            try:
                await peer.tick(demo.elapsed(), demo.tally.measured_people)
            except Exception as exc:  # a simulator's bug must not stop the demo; say it and go on
                demo.display.event(f"注意 note: the {peer.label} simulator failed: {type(exc).__name__}: {exc}")
    rows = []
    for hub, st in zip(demo.hubs, statuses, strict=True):
        off = demo.elapsed() - demo.offline_since if hub.offline and demo.offline_since is not None else None
        rows.append((hub, st, off))
    extra = [p.line(counts) for p in demo.peers]
    if demo.admin is not None:
        extra.append(progress.PeerLine("登录 login", f"{demo.admin.username} · 密码 password {demo.admin.password} · "
                                                   f"动态码 code {demo.admin.code()} (30 s)"))
    lines = progress.block(demo.elapsed(), demo.opts.duration, demo.tally, rows, counts, extra)
    delivered = {p.label: p.delivered() for p in demo.peers if p.available}
    demo.display.block(lines, progress.one_line(demo.elapsed(), demo.tally, rows, counts, delivered))
    return statuses, counts


def offline_window(opts: Options) -> tuple[float, float, float | None]:
    """(first start, length, repeat period or None) of the flaky hub's offline spells."""
    if opts.duration:
        at = opts.offline_at if opts.offline_at is not None else opts.duration * 0.25
        length = opts.offline_for if opts.offline_for is not None else opts.duration * 0.3
        return at, length, None
    return (opts.offline_at if opts.offline_at is not None else 20.0,
            opts.offline_for if opts.offline_for is not None else 30.0, 180.0)


def network(demo: Demo) -> None:
    """Pull or plug the flaky hub's cable according to the schedule."""
    flaky = next(h for h in demo.hubs if h.label == FLAKY_HUB)
    at, length, period = offline_window(demo.opts)
    t = demo.elapsed()
    phase = (t - at) % period if period and t >= at else t - at
    should_be_off = 0 <= phase < length and not demo.stop.is_set()
    if should_be_off and not flaky.offline:
        flaky.go_offline()
        demo.offline_since = t
        demo.display.event(f"断网 {flaky.name} loses its network for {length:.0f} s: it keeps measuring "
                           "and buffers every reading / 网关继续测量并缓存")
    elif not should_be_off and flaky.offline:
        flaky.go_online()
        demo.display.event(f"恢复 {flaky.name} is back online after {clock(t - (demo.offline_since or t))}: "
                           "it syncs its backlog / 网关补传缓存")


async def live(demo: Demo, http: aiohttp.ClientSession) -> None:
    """Phase 2: patients, the offline spell, the display; until the duration or Ctrl-C."""
    rng = random.Random(demo.opts.seed)
    people = scripted_patients(demo.opts.seed)
    demo.started = time.monotonic()
    for hub, rig in demo.rigs:
        demo.tasks.append(asyncio.create_task(
            run_station(http, hub, rig, people, demo.tally, demo.stop, demo.opts.pace, random.Random(rng.random())),
            name=f"station {hub.label}/{rig.station_id}"))
    while not demo.stop.is_set():
        if demo.opts.duration and demo.elapsed() >= demo.opts.duration:
            break
        network(demo)
        await refresh(demo, http)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(demo.stop.wait(), 1.0)


async def wind_down(demo: Demo, http: aiohttp.ClientSession) -> list[str]:
    """Phase 3: finish visits, bring every hub online, drain; returns hubs that did not drain."""
    demo.stop.set()
    demo.display.event("收尾 winding down: finishing the visits under way, then syncing everything ...")
    for hub in demo.hubs:
        if hub.offline:
            hub.go_online()
    station_tasks = list(demo.tasks)
    await asyncio.wait(station_tasks, timeout=60)
    await asyncio.sleep(1.0)  # the hubs commit the last frames
    deadline = time.monotonic() + DRAIN_S
    undrained = [h.name for h in demo.hubs]
    while time.monotonic() < deadline:
        statuses, counts = await refresh(demo, http)
        undrained = [h.name for h, st in zip(demo.hubs, statuses, strict=True)
                     if st is None or st.get("queue_depth", 1) != 0]
        waiting = sum(counts.pending(t) for p in demo.peers if p.available for t in p.topics)
        # a peer fed by a periodic job (the MCH assembler) may have nothing queued yet after a short run:
        # wait for its first delivery too, so an early Ctrl-C does not report it as silent
        silent = any(p.available and p.required and p.delivered() == 0 for p in demo.peers)
        if not undrained and waiting == 0 and not silent:
            break
        await asyncio.sleep(1.0)
    return undrained


async def reconcile(demo: Demo) -> Reconciliation:
    """Phase 4: compare what the devices delivered with what the cloud holds."""
    assert demo.reader is not None
    expected: dict[tuple[str, str], list[Values]] = {}
    cards = 0
    for hub, rig in demo.rigs:
        for dev in rig.devices.values():
            if dev.kind == "idcard":
                cards += len(dev.delivered)
            else:
                expected[(hub.hub_id, dev.device_id)] = [v for v in dev.delivered if isinstance(v, Values)]
    rows = await demo.reader.readings()
    sessions = await demo.reader.sessions_by_source()
    return compare(expected, rows, cards + demo.tally.staff_entries, sum(sessions.values()))


def write_summary(path: Path, demo: Demo, rec: Reconciliation, undrained: list[str], code: int) -> None:
    """The summary as JSON, for scripts and the test suite."""
    doc = {
        "exit_code": code, "ok": code == 0,
        "patients": dict(demo.tally.patients), "abnormal": demo.tally.abnormal, "stuck": demo.tally.stuck,
        "readings_delivered": rec.delivered, "readings_in_cloud": rec.in_cloud,
        "visits_opened": rec.sessions_expected, "visits_in_cloud": rec.sessions_in_cloud,
        "lost": rec.lost, "duplicated": rec.duplicated, "unexpected": rec.unexpected, "flagged": rec.flagged,
        "offline_spells": sum(h.offline_spells for h in demo.hubs), "undrained": undrained,
        "peers": {p.label: {"available": p.available, "required": p.required, "delivered": p.delivered(), **p.counts}
                  for p in demo.peers},
        "devices": [dataclasses.asdict(d) for d in rec.devices],
    }
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


async def run(opts: Options) -> int:
    """The whole demo; returns the exit code."""
    workdir, temporary = _workdir(opts)
    display = Display(plain=opts.plain)
    demo = Demo(opts, workdir, display, ProcessGroup(workdir / "logs"), peers=build_peers())
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    interrupts = 0

    def interrupted() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            display.event("Ctrl-C: 收尾 finishing the visits under way and syncing (Ctrl-C again to quit now)")
            demo.stop.set()
        elif interrupts == 2 and main is not None:
            main.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupted)
    code = 2
    display.text(f"mchub demo — 演示: the whole system on this machine (files in {workdir})")
    try:
        async with aiohttp.ClientSession() as http:
            await setup(demo, http)
            where = urls(demo)
            display.text(where)
            await check_urls(http, where, display.event)
            await live(demo, http)
            undrained = await wind_down(demo, http)
            rec = await reconcile(demo)
            counts = await demo.reader.counts() if demo.reader else CloudCounts()
            peer_lines = [p.line(counts) for p in demo.peers]
            display.text("\n".join(progress.summary(rec, demo.tally, peer_lines, [h.name for h in demo.hubs],
                                                    sum(h.offline_spells for h in demo.hubs), undrained)))
            silent = [p.label for p in demo.peers if p.available and p.required and p.delivered() == 0]
            for label in silent:
                display.text(f" 失败 FAIL: {label} — nothing was delivered (see logs/cloud.log)")
            code = 0 if rec.ok and not undrained and not silent else 1
            if opts.summary_json is not None:
                write_summary(opts.summary_json, demo, rec, undrained, code)
            return code
    except DemoError as exc:
        display.text(f"\nmchub demo: {exc}\n  logs: {workdir / 'logs'}")
        return 2
    finally:
        await shutdown(demo)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if temporary and code == 0 and not opts.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            display.text(f"文件与日志保留在 files and logs kept in {workdir}")


async def shutdown(demo: Demo) -> None:
    """Stop everything the demo started, children first."""
    for task in demo.tasks:
        task.cancel()
    await asyncio.gather(*demo.tasks, return_exceptions=True)
    with contextlib.suppress(Exception):
        await asyncio.shield(demo.group.stop_all(grace=10))
    for hub in demo.hubs:
        await hub.proxy.stop()
        for rig in hub.rigs:
            await rig.stop()
    for peer in demo.peers:
        with contextlib.suppress(Exception):
            await peer.stop()
    if demo.reader is not None:
        await demo.reader.close()

