"""hub.toml: the hub's configuration, validated at start.

Every error names the file, the key (``stations[0].devices[1].driver``) and the fix.
Relative paths are relative to the directory of the configuration file. A staff PIN's hash
lives in its own secret file (mode 0600, refused when others may read it); an inline
``secret_hash`` still works but adds a warning to :attr:`HubConfig.warnings` saying how to
move it (``mchub edge move-secrets``). Example::

    [hub]
    identity_dir = "identity"        # made by `mchub edge init`
    data_dir = "data"                # hub.db lives here
    language = "zh-CN"               # or "en"

    [sync]
    url = "https://cloud.example.cn"
    retention_days = 30

    [mqtt]                           # optional: command channel and telemetry
    host = "mqtt.example.cn"

    [web]
    bind = "0.0.0.0"
    port = 8080
    secure_cookie = false            # plain-http clinic LAN only; keep true behind HTTPS
    idle_timeout_s = 900             # staff are signed out after this long without a request

    [[web.users]]                    # staff who may sign in to the status page
    name = "nurse"
    secret_file = "staff/nurse.pin"  # `mchub edge hash-password --out staff/nurse.pin`: the hash, mode 0600

    [[stations]]
    id = "room-1"
    session_window_s = 300

    [[stations.devices]]
    id = "bp-1"
    driver = "ble-bp"
    address = "AA:BB:CC:DD:EE:FF"

A device table is handed whole to its driver factory (:mod:`drivers.registry`), so a
driver may read keys beyond ``transport``, ``address``, ``port`` and ``dialect``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import ConfigError

LANGUAGES = ("zh-CN", "en")
GUIDELINES = ("2018", "2022")
_REQUIRED: Any = object()


@dataclass(frozen=True)
class DeviceConfig:
    """One ``[[stations.devices]]`` table."""

    id: str
    driver: str
    station_id: str
    transport: str | None = None
    address: str | None = None
    port: int | None = None
    dialect: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)  #: the whole table, for the driver


@dataclass(frozen=True)
class StationConfig:
    """One ``[[stations]]`` table: a place where a patient is measured."""

    id: str
    name: str
    session_window_s: float
    devices: tuple[DeviceConfig, ...]


@dataclass(frozen=True)
class SyncConfig:
    """``[sync]``: where and how batches go."""

    url: str | None = None  #: None: keep everything locally (hand-carry with `mchub edge export`)
    batch_max_records: int = 5000
    batches_in_flight: int = 4  #: a backlog is sent this many batches ahead, acknowledged in order
    linger_ms: int = 200
    timeout_s: float = 30.0
    retention_days: float = 30.0
    max_backoff_s: float = 300.0
    prune_interval_s: float = 60.0


@dataclass(frozen=True)
class MqttConfig:
    """``[mqtt]``: command channel and telemetry."""

    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = None
    telemetry_interval_s: float = 30.0


@dataclass(frozen=True)
class StaffUser:
    """One ``[[web.users]]`` table: who may sign in to the status page."""

    name: str
    secret_hash: str  #: scrypt hash of a PIN or password (``mchub edge hash-password``)
    role: str = "staff"
    secret_file: Path | None = None  #: where the hash was read from (None: inline in hub.toml, deprecated)


@dataclass(frozen=True)
class WebConfig:
    """``[web]``: the status page and kiosk server."""

    bind: str = "0.0.0.0"
    port: int = 8080
    secure_cookie: bool = True  #: False only on a plain-http clinic LAN (cookies are then sent in clear)
    idle_timeout_s: float = 900.0
    kiosk_summary_s: float = 30.0  #: how long the kiosk shows the summary before it closes the session
    users: tuple[StaffUser, ...] = ()
    # the doors (docs/edge.md "Connection limits"): proxies trusted for X-Forwarded-For ("" = none,
    # the client address is the peer's), body cap, connections in total and per client address,
    # header and whole-request deadlines that a dripping client cannot move
    forwarded_allow_ips: str = ""
    max_body_bytes: int = 65_536
    max_connections: int = 200
    max_connections_per_ip: int = 16
    header_timeout_s: float = 10.0
    request_timeout_s: float = 60.0


@dataclass(frozen=True)
class HubConfig:
    """The whole validated configuration."""

    path: Path
    identity_dir: Path
    data_dir: Path
    language: str = "zh-CN"
    plugins: tuple[str, ...] = ()  #: extra modules with a ``DRIVERS`` dict (site-specific drivers)
    stations: tuple[StationConfig, ...] = ()
    sync: SyncConfig = field(default_factory=SyncConfig)
    mqtt: MqttConfig | None = None
    web: WebConfig = field(default_factory=WebConfig)
    min_free_mb: int = 200
    bp_guideline: str = "2018"
    group_max: int = 4000
    #: things that work but should change (each names file, key and fix); logged at start
    warnings: tuple[str, ...] = ()
    #: ``[hub] simulated = true``: every device of this hub is a simulator (demo, training rig); each
    #: reading is flagged "simulated" end to end, and the cloud keeps it from the HIS and the MCH platform
    simulated: bool = False

    @property
    def web_bind(self) -> str:
        """Address the status page and kiosk listen on."""
        return self.web.bind

    @property
    def web_port(self) -> int:
        """Port of the status page and kiosk (0: any free port)."""
        return self.web.port

    @property
    def db_path(self) -> Path:
        """The SQLite database file."""
        return self.data_dir / "hub.db"

    def devices(self) -> list[DeviceConfig]:
        """Every device of every station."""
        return [d for s in self.stations for d in s.devices]


class _Table:
    """Typed access to one TOML table that reports errors by file and key."""

    def __init__(self, file: str, prefix: str, data: Any) -> None:
        if not isinstance(data, dict):
            raise ConfigError(file, prefix or "(top level)", "must be a table", f"write [{prefix}] as a table")
        self.file, self.prefix, self.data = file, prefix, data
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def fail(self, name: str, problem: str, fix: str) -> ConfigError:
        return ConfigError(self.file, self.key(name), problem, fix)

    def get(self, name: str, kind: type | tuple[type, ...], default: Any, example: str) -> Any:
        self.used.add(name)
        if name not in self.data:
            if default is _REQUIRED:
                raise self.fail(name, "is missing", f"add `{name} = {example}`")
            return default
        value = self.data[name]
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.fail(name, f"has the wrong type ({value!r})", f"write it like `{name} = {example}`")
        if not isinstance(value, kind):
            raise self.fail(name, f"has the wrong type ({type(value).__name__})", f"write it like `{name} = {example}`")
        return value

    def text(self, name: str, default: Any = _REQUIRED, example: str = '"..."',
             choices: tuple[str, ...] | None = None) -> Any:
        value = self.get(name, str, default, example)
        if choices and value is not None and value not in choices:
            raise self.fail(name, f"is {value!r}", "use one of: " + ", ".join(choices))
        return value

    def number(self, name: str, default: Any, low: float, high: float, integer: bool = False) -> Any:
        value = self.get(name, int if integer else (int, float), default, str(int(low) if integer else low))
        if value is not None and not low <= value <= high:
            raise self.fail(name, f"is {value}, outside {low:g}..{high:g}",
                            f"choose a value between {low:g} and {high:g}")
        return value

    def check_unknown(self, allowed_extra: bool = False) -> None:
        if allowed_extra:
            return
        for name in self.data:
            if name not in self.used:
                known = ", ".join(sorted(self.used)) or "none"
                raise self.fail(name, "is not a known setting", f"remove it or check the spelling (known: {known})")


def _path(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def load(path: str | Path, driver_kinds: Callable[[tuple[str, ...]], Mapping[str, Any]] | None = None) -> HubConfig:
    """Read and validate hub.toml; raises :class:`ConfigError`.

    ``driver_kinds(plugins)`` lists the known driver names; by default
    :func:`edge.plugins.known_drivers` (the registry, edge's built-ins and plugins).
    """
    path = Path(path)
    file = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(file, "(file)", "does not exist", "create it; see docs/edge.md for an example") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(file, "(file)", f"cannot be read: {exc}", "check the path and permissions") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "(syntax)", str(exc), "fix the TOML syntax at that line") from exc
    base = path.resolve().parent
    top = _Table(file, "", raw)
    hub = _Table(file, "hub", top.get("hub", dict, {}, "{}"))
    identity_dir = _path(base, hub.text("identity_dir", "identity"))
    data_dir = _path(base, hub.text("data_dir", "data"))
    language = hub.text("language", "zh-CN", choices=LANGUAGES)
    plugins = tuple(hub.get("plugins", list, [], '["my_site.drivers"]'))
    simulated = hub.get("simulated", bool, False, "true")
    hub.check_unknown()

    s = _Table(file, "sync", top.get("sync", dict, {}, "{}"))
    url = s.text("url", None, '"https://cloud.example.cn"')
    if url is not None and not url.startswith(("http://", "https://")):
        raise s.fail("url", f"is {url!r}", 'give the cloud address, e.g. "https://cloud.example.cn"')
    sync = SyncConfig(
        url=url.rstrip("/") if url else None,
        batch_max_records=s.number("batch_max_records", 5000, 1, 100_000, integer=True),
        batches_in_flight=s.number("batches_in_flight", 4, 1, 16, integer=True),
        linger_ms=s.number("linger_ms", 200, 0, 60_000, integer=True),
        timeout_s=float(s.number("timeout_s", 30.0, 1, 600)),
        retention_days=float(s.number("retention_days", 30.0, 0, 3650)),
        max_backoff_s=float(s.number("max_backoff_s", 300.0, 0.1, 86_400)),
        prune_interval_s=float(s.number("prune_interval_s", 60.0, 0, 86_400)),
    )
    s.check_unknown()

    mqtt = None
    if "mqtt" in raw:
        m = _Table(file, "mqtt", top.get("mqtt", dict, {}, "{}"))
        mqtt = MqttConfig(
            host=m.text("host", example='"mqtt.example.cn"'),
            port=m.number("port", 1883, 1, 65535, integer=True),
            username=m.text("username", None), password=m.text("password", None),
            telemetry_interval_s=float(m.number("telemetry_interval_s", 30.0, 0.1, 3600)),
        )
        m.check_unknown()

    warnings: list[str] = []
    web = _web(_Table(file, "web", top.get("web", dict, {}, "{}")), base, warnings)

    st = _Table(file, "storage", top.get("storage", dict, {}, "{}"))
    min_free_mb = st.number("min_free_mb", 200, 0, 1_000_000, integer=True)
    group_max = st.number("group_max", 4000, 1, 100_000, integer=True)
    st.check_unknown()

    th = _Table(file, "thresholds", top.get("thresholds", dict, {}, "{}"))
    guideline = th.text("bp_guideline", "2018", '"2018"', choices=GUIDELINES)
    default_window = float(th.number("session_window_s", 300.0, 5, 86_400))
    th.check_unknown()

    if driver_kinds is None:
        from edge.plugins import known_drivers

        driver_kinds = known_drivers
    try:
        kinds = driver_kinds(plugins)
    except ImportError as exc:
        raise hub.fail("plugins", f"a plugin cannot be imported ({exc})",
                       "install it or remove it from the list") from exc
    stations = _stations(file, top.get("stations", list, [], '[{id = "room-1"}]'), default_window, kinds)
    top.check_unknown()
    return HubConfig(path=path, identity_dir=identity_dir, data_dir=data_dir, language=language, plugins=plugins,
                     stations=stations, sync=sync, mqtt=mqtt, web=web,
                     min_free_mb=min_free_mb, bp_guideline=guideline, group_max=group_max,
                     warnings=tuple(warnings), simulated=simulated)


def _web(w: _Table, base: Path, warnings: list[str]) -> WebConfig:
    users: list[StaffUser] = []
    for i, item in enumerate(w.get("users", list, [], '[{name = "nurse", secret_file = "staff/nurse.pin"}]')):
        u = _Table(w.file, f"web.users[{i}]", item)
        name = u.text("name", example='"nurse"')
        inline = u.text("secret_hash", None, '"scrypt$15$8$1$..."')
        file_value = u.text("secret_file", None, f'"staff/{name}.pin"')
        if (inline is None) == (file_value is None):
            pin_file = base / "staff" / f"{name}.pin"
            raise u.fail("secret_file", "is missing" if inline is None else "is given together with secret_hash",
                         f"run `mchub edge hash-password --out {pin_file}` and write "
                         f'`secret_file = "staff/{name}.pin"` (and no secret_hash)')
        secret_file = None if file_value is None else _path(base, file_value)
        if secret_file is not None:
            secret = _secret_file(u, secret_file)
        else:
            secret = inline
            if not secret.startswith("scrypt$") or secret.count("$") != 5:
                raise u.fail("secret_hash", "is not a scrypt hash",
                             "run `mchub edge hash-password --out FILE` and set secret_file (never the PIN itself)")
            warnings.append(f"{w.file}: {u.key('secret_hash')}: the PIN hash is inline in hub.toml, which others "
                            f"may read (a 6-digit PIN falls to a guessing run on a copy of it)\n  fix: run "
                            f"`mchub edge move-secrets --config {w.file}` (moves every inline hash to its own "
                            f"0600 file and writes secret_file)")
        if name in {x.name for x in users}:
            raise u.fail("name", f"{name!r} is listed twice", "give every user one entry")
        users.append(StaffUser(name, secret, u.text("role", "staff", choices=("staff",)), secret_file))
        u.check_unknown()
    web = WebConfig(
        bind=w.text("bind", "0.0.0.0", '"127.0.0.1"'),
        port=w.number("port", 8080, 0, 65535, integer=True),
        secure_cookie=w.get("secure_cookie", bool, True, "false"),
        idle_timeout_s=float(w.number("idle_timeout_s", 900.0, 30, 86_400)),
        kiosk_summary_s=float(w.number("kiosk_summary_s", 30.0, 1, 3600)),
        users=tuple(users),
        forwarded_allow_ips=w.text("forwarded_allow_ips", "", '"127.0.0.1"'),
        max_body_bytes=w.number("max_body_bytes", 65_536, 1024, 16 << 20, integer=True),
        max_connections=w.number("max_connections", 200, 4, 10_000, integer=True),
        max_connections_per_ip=w.number("max_connections_per_ip", 16, 1, 10_000, integer=True),
        header_timeout_s=float(w.number("header_timeout_s", 10.0, 1, 300)),
        request_timeout_s=float(w.number("request_timeout_s", 60.0, 1, 3600)),
    )
    w.check_unknown()
    return web


def _secret_file(u: _Table, path: Path) -> str:
    """The scrypt hash in a staff secret file; refused when missing, readable by others or not a hash."""
    key = "secret_file"
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise u.fail(key, f"{path} does not exist", f"run `mchub edge hash-password --out {path}`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise u.fail(key, f"{path} cannot be read: {exc}", "check the path and that the hub's user owns it") from exc
    if mode & 0o077:
        raise u.fail(key, f"{path} is readable by others (mode {mode & 0o777:04o})", f"run `chmod 600 {path}`")
    if not text.startswith("scrypt$") or text.count("$") != 5:
        raise u.fail(key, f"{path} does not hold a scrypt hash",
                     f"run `mchub edge hash-password --out {path}` (it writes the hash, never the PIN)")
    return text


def _stations(file: str, raw: list[Any], window: float, kinds: Mapping[str, Any]) -> tuple[StationConfig, ...]:
    stations: list[StationConfig] = []
    station_ids: set[str] = set()
    device_ids: set[str] = set()
    for i, item in enumerate(raw):
        t = _Table(file, f"stations[{i}]", item)
        sid = t.text("id", example='"room-1"')
        if sid in station_ids:
            raise t.fail("id", f"{sid!r} is used by two stations", "give every station its own id")
        station_ids.add(sid)
        devices: list[DeviceConfig] = []
        for j, dev in enumerate(t.get("devices", list, [], "[]")):
            d = _Table(file, f"stations[{i}].devices[{j}]", dev)
            did = d.text("id", example='"bp-1"')
            if did in device_ids:
                raise d.fail("id", f"{did!r} is used by two devices", "give every device its own id")
            device_ids.add(did)
            driver = d.text("driver", example='"ble-bp"')
            if driver not in kinds:
                known = ", ".join(sorted(kinds)) or "none are installed in this build"
                raise d.fail("driver", f"unknown driver {driver!r}", f"use one of: {known}")
            if isinstance(dev.get("port"), str):  # a serial path: every serial driver reads it from address
                raise d.fail("port", f"is {dev['port']!r}, not a number",
                             f'write a serial port as address = "{dev["port"]}"; port is a TCP port '
                             "(or, for modbus-rtu, the Modbus unit id)")
            devices.append(DeviceConfig(
                id=did, driver=driver, station_id=sid, transport=d.text("transport", None),
                address=d.text("address", None), port=d.number("port", None, 0, 65535, integer=True),
                dialect=d.text("dialect", None), options=dict(dev),
            ))
        stations.append(StationConfig(
            id=sid, name=t.text("name", sid),
            session_window_s=float(t.number("session_window_s", window, 5, 86_400)),
            devices=tuple(devices),
        ))
        t.check_unknown()
    return tuple(stations)
