"""The hub process: wires store, supervisor, sessions, sync, command channel and status API.

``Hub(cfg).run()`` is what ``mchub edge run`` executes. SIGTERM/SIGINT stop it cleanly
(queued inputs are committed first); SIGHUP reloads the configuration (devices and
session windows; identity and store stay).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from drivers.base import Measurement
from drivers.errors import FrameError
from edge import config as config_mod
from edge import enrolled, memory
from edge import identity as identity_mod
from edge.config import HubConfig, validate_devices
from edge.errors import EdgeError
from edge.hub_view import StoreHealth
from edge.plugins import known_drivers
from edge.sessions import SessionManager, thresholds
from edge.store import reader as q
from edge.store.ledger import BindIn, CloseIn, IdentifyIn, Ledger, TickIn
from edge.store.reader import Reader
from edge.store.schema import Quarantine, open_db
from edge.store.writer import DiskGuard, GroupWriter
from edge.supervisor import DeviceHealth, Supervisor
from edge.sync import SyncClient
from protocol.commands import CommandBody, Telemetry
from protocol.flags import BpThresholds
from protocol.ids import now_ms
from protocol.model import Subject
from provisioning.inventory import HubConfig as Inventory

log = logging.getLogger("edge.hub")
#: how often audit rows past their retention are deleted
AUDIT_PRUNE_EVERY_S = 3600.0


def _version() -> str:
    """The installed mchub's version, from its ``METADATA`` file: ``importlib.metadata`` (with ``email``,
    ``zipfile`` and ``csv`` behind it) stayed in the hub's memory for this one line (~0.7 MB, issue 21)."""
    import sys
    from pathlib import Path

    for entry in sys.path:
        for info in sorted(Path(entry or ".").glob("mchub-*.dist-info")):
            with contextlib.suppress(OSError):
                for line in (info / "METADATA").read_text(encoding="utf-8").splitlines():
                    if line.startswith("Version: "):
                        return line.removeprefix("Version: ").strip()
                    if not line:
                        break
    return "unknown"


class Hub:
    """One running hub. ``await start()`` ... ``await stop()``, or ``await run()`` until a signal."""

    def __init__(self, cfg: HubConfig, clock: Callable[[], int] | None = None, tick_s: float = 5.0,
                 monotonic: Callable[[], int] | None = None) -> None:
        self.cfg = cfg
        self.clock = clock  #: wall clock (ms) stamping records; None: the system clock
        #: clock measuring session idleness (ms, never jumps); default: the system's monotonic clock, or the
        #: injected wall clock when only that is given (tests fast-forwarding a simulated week)
        self.monotonic = monotonic or clock or (lambda: time.monotonic_ns() // 1_000_000)
        self.tick_s = tick_s
        self.version = _version()
        self.quarantine: Quarantine | None = None
        self.sync: SyncClient | None = None
        self.enrollment: enrolled.Maintainer | None = None
        self.web_port: int | None = None
        self.live: dict[str, Measurement] = {}  #: latest live value per station (kiosk)
        self.live_listeners: list[Callable[[str, Measurement], None]] = []  #: told of every live value
        self.kiosk: Any = None  #: edge.web.kiosk.Kiosk once the web server runs
        self.staff_login: Any = None  #: edge.web.auth.StaffLogin once the web server runs (its throttle)
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopping = asyncio.Event()
        #: why the hub stopped on its own (a task failed); None after a requested stop
        self.failure: str | None = None
        self._web: Any = None
        self._small: set[asyncio.Task[Any]] = set()
        self._reload_lock = asyncio.Lock()  #: one configuration change at a time (SIGHUP, command, cloud)

    async def start(self, web: bool = True) -> None:
        """Open the store and start every part."""
        memory.apply(asyncio.get_running_loop())  # before the first thread starts
        cfg = self.cfg = await asyncio.to_thread(enrolled.with_enrollment, self.cfg)
        validate_devices(cfg)
        self.identity = identity_mod.load(cfg.identity_dir)
        self.enrollment = (enrolled.Maintainer(cfg.identity_dir, self.reload_config, self._set_identity,
                                               check=self._check_inventory)
                           if identity_mod.is_enrolled(cfg.identity_dir) else None)
        conn, self.quarantine = await asyncio.to_thread(open_db, cfg.db_path, self.identity.hub_id)
        self.sessions = SessionManager(self._windows(cfg), 300_000, thresholds(cfg.bp_guideline),
                                       monotonic=self.monotonic)
        ledger = Ledger(conn, self.sessions, self.identity.encrypt, self.clock, self.identity.subject_tag)
        self.writer = GroupWriter(ledger, DiskGuard(cfg.data_dir, cfg.min_free_mb << 20), cfg.group_max)
        self.writer.start()
        self.reader = Reader(cfg.db_path, self.identity.decrypt)
        self.supervisor = Supervisor(cfg.devices(), known_drivers(cfg.plugins), self.writer.submit,
                                     self._frame_error, self._live, simulated=cfg.simulated)
        for warning in cfg.warnings:
            log.warning("%s", warning)
        st = self.reader.state()
        log.info("hub %s started: epoch %d, next seq %d, cloud acked through %d, %d device(s)",
                 st["hub_id"], st["epoch"], st["next_seq"], st["acked_through"], len(cfg.devices()))
        if cfg.sync.url:
            self.sync = SyncClient(cfg.sync, self.identity, self.reader, self.writer,
                                   lambda: identity_mod.load(cfg.identity_dir), cfg.sync.prune_interval_s,
                                   clock=self.clock or now_ms)
            self.writer.listeners.append(self.sync.wake)
            self.sync.on_config_version = self.enrollment.on_config_version if self.enrollment else None
            self.sync.report = self._sync_report
            self._spawn(self.sync.run(), "sync")
        else:
            log.warning("no [sync] url: readings stay on this hub (use `mchub edge export` to hand-carry them)")
        self.supervisor.start()
        self._spawn(self._ticker(), "sessions")
        self._spawn(memory.trimmer(), "memory")
        self._spawn(self._prune_audit(), "audit")
        if self.enrollment is not None:
            self._spawn(self.enrollment.run(), "rotation")
        if cfg.mqtt is not None:
            from edge.commands import CommandChannel

            self.channel = CommandChannel(cfg.mqtt, self.identity.hub_id, self.version, self.identity.cloud_signing,
                                          self.telemetry, self._handlers(), self.writer.call)
            self._spawn(self.channel.run(), "mqtt")
        if web:
            await self._start_web()

    def _check_inventory(self, inventory: Inventory) -> None:
        """Refuse (ConfigError naming the device) a cloud configuration this hub cannot run; runs in a thread."""
        validate_devices(enrolled.with_inventory(config_mod.load(self.cfg.path), inventory))

    def config_status(self) -> dict[str, Any]:
        """Configuration push state (see :class:`edge.enrolled.Maintainer`); ``state`` "local" when not enrolled."""
        if self.enrollment is None:
            return {"state": "local", "applied": None, "desired": None, "error": None}
        return self.enrollment.status()

    # --- the view of the web pages and API (edge.hub_view.HubView) ----------------------

    @property
    def bp_thresholds(self) -> BpThresholds:
        """The blood-pressure thresholds readings are flagged against ([thresholds] bp_guideline)."""
        return self.sessions.bp

    @property
    def commit_listeners(self) -> list[Callable[[], None]]:
        """Told (in the loop) after records were committed to hub.db."""
        return self.writer.listeners

    def device_health(self) -> list[DeviceHealth]:
        """Link state and last reading of every configured device."""
        return list(self.supervisor.health.values())

    def store_health(self) -> StoreHealth:
        """hub.db's writer: held inputs, disk space, last error, commits."""
        w = self.writer
        return StoreHealth(w.held, w.guard.low, w.guard.free, w.last_error, w.commits)

    def broker_connected(self) -> bool | None:
        """MQTT command channel connected (None: no [mqtt])."""
        channel = getattr(self, "channel", None)
        return None if channel is None else bool(channel.connected)

    async def audit(self, kind: str, actor: str, detail: str) -> None:
        """One entry in hub.db's audit log (who saw or changed what)."""
        await self.writer.call(q.audit(kind, actor, detail, now_ms()))

    def _sync_report(self) -> dict[str, str]:
        """Headers with every batch: applied configuration version and the devices whose link is down."""
        down: list[str] = []
        for h in self.supervisor.health.values():  # whole ids only, within the cloud's bounds (64 ids, 2 KiB)
            if not h.connected and len(down) < 64 and sum(len(d) + 1 for d in down) + len(h.device_id) <= 2048:
                down.append(h.device_id)
        applied = self.config_status()["applied"]
        return {"X-Mchub-Devices-Down": ",".join(down),
                **({"X-Mchub-Config-Applied": str(applied)} if applied is not None else {})}

    def _windows(self, cfg: HubConfig) -> dict[str, int]:
        return {s.id: int(s.session_window_s * 1000) for s in cfg.stations}

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("hub task %s failed: %r; stopping the hub (the service manager restarts it)",
                      task.get_name(), task.exception(), exc_info=task.exception())
            self.failure = self.failure or f"hub task {task.get_name()} failed: {task.exception()!r}"
            self._stopping.set()

    async def _start_web(self) -> None:
        from webui import embedded_uvicorn

        Config, Server = embedded_uvicorn.load()  # first: uvicorn without its command line (1.3 MB)
        from edge.web.app import build_app
        from webui import conn_guard
        from webui.log_limit import quiet_accept_errors

        class _Server(Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Any:  # the hub handles signals itself
                yield

        w = self.cfg.web
        guarded = conn_guard.protocol_with(conn_guard.ConnLimits(
            max_connections=w.max_connections, max_per_source=w.max_connections_per_ip,
            header_timeout_s=w.header_timeout_s, request_timeout_s=w.request_timeout_s,
            exempt=conn_guard.exempt_from(w.forwarded_allow_ips)))
        quiet_accept_errors(asyncio.get_running_loop())
        server = _Server(Config(build_app(self), host=self.cfg.web_bind, port=self.cfg.web_port,
                                        log_level="warning", access_log=False, lifespan="off",
                                        timeout_graceful_shutdown=3, http=guarded,
                                        # asyncio accepts up to `backlog` connections in one go before the guard
                                        # can close the excess: 64 keeps a flood's burst well inside the fd limit
                                        backlog=64,
                                        proxy_headers=bool(w.forwarded_allow_ips),
                                        forwarded_allow_ips=w.forwarded_allow_ips or None))
        self._web = server
        self._spawn(self.kiosk.run(), "kiosk")
        self._spawn(server.serve(), "web")
        web_task = self._tasks[-1]
        while not server.started:
            await asyncio.sleep(0.02)
            if self._stopping.is_set() or web_task.done():
                raise EdgeError(f"the status API could not listen on {self.cfg.web_bind}:{self.cfg.web_port}; "
                                "is another hub running? change [web] port")
        self.web_port = server.servers[0].sockets[0].getsockname()[1]
        log.info("status page on http://%s:%d/ (kiosk: /kiosk/<station>)", self.cfg.web_bind, self.web_port)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            await self.writer.submit(TickIn())

    async def _prune_audit(self) -> None:
        """Forget audit rows older than ``[storage] audit_retention_days`` at start and then hourly (the
        setting is read at every pass, so a reload applies), whether or not the hub syncs."""
        while True:
            before = (self.clock or now_ms)() - self.cfg.audit_retention_days * 86_400_000
            total = 0
            try:
                while (n := await self.writer.call(q.prune_audit(before))) == q.AUDIT_PRUNE_CHUNK:
                    total += n
                total += n
            except sqlite3.Error as exc:  # a full disk, say: the rows wait for the next pass
                log.warning("audit rows past their retention not pruned yet (%s); next try in an hour", exc)
            if total:
                log.info("pruned %d audit rows older than %d days", total, self.cfg.audit_retention_days)
            await asyncio.sleep(AUDIT_PRUNE_EVERY_S)

    def _frame_error(self, device_id: str, error: FrameError) -> None:
        task = asyncio.create_task(self.writer.call(q.frame_error(device_id, error.reason, str(error),
                                                                  bytes(error.raw), now_ms())))
        self._small.add(task)
        task.add_done_callback(self._small.discard)

    def _live(self, station_id: str, m: Measurement) -> None:
        self.live[station_id] = m
        for listener in self.live_listeners:
            listener(station_id, m)

    # --- actions used by the status API and commands -----------------------------------

    async def identify(self, station_id: str, subject: Subject, pregnant_weeks: int | None = None) -> str:
        """Open a session (staff entry, QR); returns its id."""
        return str(await self.writer.submit(IdentifyIn(station_id, subject, pregnant_weeks, "staff")))

    async def close_session(self, station_id: str, reason: str) -> int:
        """Close the station's session; returns 1 when one was open."""
        return int(await self.writer.submit(CloseIn(station_id, reason)))

    async def bind(self, reading_uid: str, session_id: str, by: str) -> int:
        """Bind an unbound reading to a session; returns the seq of the ReadingBound record."""
        return int(await self.writer.submit(BindIn(reading_uid, session_id, by)))

    async def resend_dead_letter(self, seq: int, by: str, drop_codes: tuple[str, ...] = ()) -> int:
        """Store a refused reading again as a new record (edge.store.deadletters); returns its seq."""
        from edge.store import deadletters

        new_seq = int(await self.writer.call(deadletters.resend(self.writer.ledger, seq, by, drop_codes,
                                                                         (self.clock or now_ms)())))
        if self.sync is not None:
            self.sync.wake()
        return new_seq

    async def dismiss_dead_letter(self, seq: int, by: str) -> None:
        """Mark a refused record as dealt with; it is kept and not sent again."""
        from edge.store import deadletters

        await self.writer.call(deadletters.dismiss(seq, by, (self.clock or now_ms)()))

    async def telemetry(self) -> Telemetry:
        """Counts and ages for the cloud dashboard."""
        st = await asyncio.to_thread(self.reader.state)
        oldest = await asyncio.to_thread(self.reader.oldest_unsynced_at)
        return Telemetry(
            at_ms=now_ms(), queue_depth=st["next_seq"] - 1 - st["acked_through"],
            oldest_unsynced_age_s=(now_ms() - oldest) / 1000 if oldest else None,
            last_sync_ms=self.sync.last_success_ms if self.sync else None,
            devices={k: h.summary() for k, h in self.supervisor.health.items()},
            disk_free_bytes=self.writer.guard.free, version=self.version,
            dead_letters_open=await asyncio.to_thread(self.reader.count_dead_letters),
            config_applied=self.config_status()["applied"], config_desired=self.config_status()["desired"],
            config_error=self.config_status()["error"])

    async def reload_config(self) -> str:
        """Re-read hub.toml (and the enrollment); start, stop or restart only the devices that changed.

        The new configuration is validated whole before anything is touched: a refused one
        leaves every driver running as it was (EdgeError).
        """
        async with self._reload_lock:
            cfg = await asyncio.to_thread(lambda: enrolled.with_enrollment(config_mod.load(self.cfg.path)))
            validate_devices(cfg)
            changes = await self.supervisor.apply(cfg.devices(), known_drivers(cfg.plugins), cfg.simulated)
            self.cfg = cfg
            for warning in cfg.warnings:
                log.warning("%s", warning)
            self.sessions.windows_ms = self._windows(cfg)
            await self.writer.call(q.audit("reload_config", "hub", changes.describe(), now_ms()))
            return f"configuration reloaded: {len(cfg.devices())} device(s); {changes.describe()}"

    def _set_identity(self, identity: identity_mod.Identity) -> None:
        self.identity = identity
        if self.sync is not None:
            self.sync.identity = identity

    async def rotate_key(self) -> str:
        """New signing key; the reply gives its public key for the cloud to register."""
        if self.enrollment is not None:  # enrolled: the cloud certifies the new key itself
            reply = await self.enrollment.rotate()
            await self.writer.call(q.audit("rotate_key", "cloud", reply, now_ms()))
            return reply
        self.identity = await asyncio.to_thread(identity_mod.rotate, self.cfg.identity_dir)
        if self.sync is not None:
            self.sync.identity = self.identity
        await self.writer.call(q.audit("rotate_key", "cloud", self.identity.public_hex, now_ms()))
        return f"ed25519:{self.identity.public_hex}"

    def _handlers(self) -> dict[str, Any]:
        async def sync_now(_: CommandBody) -> str:
            if self.sync is None:
                return "sync is disabled on this hub"
            self.sync.sync_now()
            return "sync started"

        async def ping(_: CommandBody) -> str:
            return "pong"

        async def reload(_: CommandBody) -> str:
            return await self.reload_config()

        async def rotate(_: CommandBody) -> str:
            return await self.rotate_key()

        async def apply_config(cmd: CommandBody) -> str:
            if self.enrollment is None:
                return "this hub is not enrolled; its devices come from hub.toml"
            return await self.enrollment.apply(cmd)

        async def revoked(cmd: CommandBody) -> str:
            reason = cmd.args.get("reason", "")
            if self.sync is not None:
                self.sync.block(f"网关已被吊销 / the cloud revoked this hub ({reason}); readings are kept here; "
                                "ask the central admin to enroll it again")
            await self.writer.call(q.audit("revoked", "cloud", reason[:200], now_ms()))
            return "sync stopped; readings are kept"

        async def resend_dead_letter(cmd: CommandBody) -> str:  # args: seq, drop ("code,code"), by
            drop = tuple(c for c in cmd.args.get("drop", "").split(",") if c)
            by = f"cloud:{cmd.args.get('by', '')[:64]}".rstrip(":")
            seq = await self.resend_dead_letter(int(cmd.args.get("seq", "")), by, drop)
            return f"resent as seq {seq}"

        async def dismiss_dead_letter(cmd: CommandBody) -> str:  # args: seq, by
            by = f"cloud:{cmd.args.get('by', '')[:64]}".rstrip(":")
            await self.dismiss_dead_letter(int(cmd.args.get("seq", "")), by)
            return "dismissed"

        return {"sync-now": sync_now, "ping": ping, "reload-config": reload, "rotate-key": rotate,
                "apply-config": apply_config, "revoke": revoked, "resend-dead-letter": resend_dead_letter,
                "dismiss-dead-letter": dismiss_dead_letter}

    # --- lifecycle ----------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask :meth:`run` to stop."""
        self._stopping.set()

    def _reload_on_signal(self) -> None:
        async def reload() -> None:
            try:
                log.info("%s", await self.reload_config())
            except EdgeError as exc:
                log.error("configuration NOT reloaded, the hub keeps the old one: %s", exc)

        task = asyncio.create_task(reload())
        self._small.add(task)
        task.add_done_callback(self._small.discard)

    async def stop(self) -> None:
        """Stop drivers, commit what is queued, stop everything else."""
        await self.supervisor.stop()
        if self.kiosk is not None:
            self.kiosk.stop()
        if self._web is not None:
            self._web.should_exit = True
        for t in self._tasks:
            if t.get_name() != "web":
                t.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=10)
            for t in pending:
                log.error("hub task %s did not stop in 10 s; cancelling it: %s", t.get_name(), t.get_stack(limit=5))
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.writer.stop()
        self.reader.close()
        self.writer.ledger.conn.close()

    async def run(self) -> None:
        """Start, serve until SIGTERM/SIGINT (SIGHUP reloads), stop."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self._reload_on_signal)
        await self.start()
        started = time.monotonic()
        await self._stopping.wait()
        log.info("hub stopping after %.0f s", time.monotonic() - started)
        await self.stop()
