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

Each key is declared once, in the section's msgspec Struct below (type, default, bounds,
example); :func:`protocol.settings.decode` checks a table against it and
:func:`_config_error` words what is wrong (docs/decisions.md "Configuration validation").
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import msgspec
from msgspec import Meta

from drivers.errors import ConfigError as DriverConfigError
from edge.errors import ConfigError
from edge.plugins import known_drivers
from protocol.settings import SettingError, SettingProblem, decode, dotted, number_text, toml_value

Language = Literal["zh-CN", "en"]
Guideline = Literal["2018", "2022"]
LANGUAGES: tuple[str, ...] = get_args(Language)
GUIDELINES: tuple[str, ...] = get_args(Guideline)


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A hub.toml table: an unknown key is refused (a misspelt one would otherwise be ignored)."""


class DeviceConfig(msgspec.Struct, frozen=True, kw_only=True):
    """One ``[[stations.devices]]`` table (extra keys allowed: ``options`` hands them to the driver)."""

    id: Annotated[str, Meta(examples=["bp-1"])]
    driver: Annotated[str, Meta(examples=["ble-bp"])]
    station_id: str = ""  #: the enclosing station (set by :func:`load`)
    transport: str | None = None
    address: str | None = None
    port: Annotated[int, Meta(ge=0, le=65535)] | None = None
    dialect: str | None = None
    #: the whole table, for the driver (set by :func:`load`)
    options: dict[str, Any] = msgspec.field(default_factory=dict)


@dataclass(frozen=True)
class StationConfig:
    """One ``[[stations]]`` table: a place where a patient is measured."""

    id: str
    name: str
    session_window_s: float
    devices: tuple[DeviceConfig, ...]


class _StationTable(_Section, frozen=True):
    id: Annotated[str, Meta(examples=["room-1"])]
    name: str | None = None  #: default: the id
    session_window_s: Annotated[float, Meta(ge=5, le=86_400)] | None = None  #: default: [thresholds]
    devices: tuple[DeviceConfig, ...] = ()


class SyncConfig(_Section, frozen=True):
    """``[sync]``: where and how batches go."""

    #: None: keep everything locally (hand-carry with `mchub edge export`)
    url: Annotated[str, Meta(examples=["https://cloud.example.cn"])] | None = None
    batch_max_records: Annotated[int, Meta(ge=1, le=100_000)] = 5000
    #: a backlog is sent this many batches ahead, acknowledged in order (docs/protocol.md §2.1)
    batches_in_flight: Annotated[int, Meta(ge=1, le=16)] = 4
    linger_ms: Annotated[int, Meta(ge=0, le=60_000)] = 200
    timeout_s: Annotated[float, Meta(ge=1, le=600)] = 30.0
    retention_days: Annotated[float, Meta(ge=0, le=3650)] = 30.0
    max_backoff_s: Annotated[float, Meta(ge=0.1, le=86_400)] = 300.0
    prune_interval_s: Annotated[float, Meta(ge=0, le=86_400)] = 60.0


class MqttConfig(_Section, frozen=True):
    """``[mqtt]``: command channel and telemetry."""

    host: Annotated[str, Meta(examples=["mqtt.example.cn"])]
    port: Annotated[int, Meta(ge=1, le=65535)] = 1883
    username: str | None = None
    password: str | None = None
    telemetry_interval_s: Annotated[float, Meta(ge=0.1, le=3600)] = 30.0


class StaffUser(_Section, frozen=True):
    """One ``[[web.users]]`` table: who may sign in to the status page."""

    name: Annotated[str, Meta(examples=["nurse"])]
    #: scrypt hash of a PIN or password (``mchub edge hash-password``); read from ``secret_file`` by :func:`load`
    secret_hash: Annotated[str, Meta(examples=["scrypt$15$8$1$..."])] = ""
    role: Literal["staff"] = "staff"
    #: where the hash was read from (None: inline in hub.toml, deprecated)
    secret_file: Annotated[Path, Meta(examples=["staff/nurse.pin"])] | None = None


class WebConfig(_Section, frozen=True):
    """``[web]``: the status page and kiosk server."""

    bind: Annotated[str, Meta(examples=["127.0.0.1"])] = "0.0.0.0"
    port: Annotated[int, Meta(ge=0, le=65535)] = 8080
    #: False only on a plain-http clinic LAN (cookies are then sent in clear)
    secure_cookie: bool = True
    idle_timeout_s: Annotated[float, Meta(ge=30, le=86_400)] = 900.0
    #: how long the kiosk shows the summary before it closes the session
    kiosk_summary_s: Annotated[float, Meta(ge=1, le=3600)] = 30.0
    users: Annotated[tuple[StaffUser, ...], Meta(examples=[[{"name": "nurse",
                                                               "secret_file": "staff/nurse.pin"}]])] = ()
    # the doors (docs/edge.md "Connection limits"): proxies trusted for X-Forwarded-For ("" = none,
    # the client address is the peer's), body cap, connections in total and per client address,
    # header and whole-request deadlines that a dripping client cannot move
    forwarded_allow_ips: Annotated[str, Meta(examples=["127.0.0.1"])] = ""
    max_body_bytes: Annotated[int, Meta(ge=1024, le=16 << 20)] = 65_536
    max_connections: Annotated[int, Meta(ge=4, le=10_000)] = 200
    max_connections_per_ip: Annotated[int, Meta(ge=1, le=10_000)] = 16
    header_timeout_s: Annotated[float, Meta(ge=1, le=300)] = 10.0
    request_timeout_s: Annotated[float, Meta(ge=1, le=3600)] = 60.0


class _HubTable(_Section, frozen=True):
    identity_dir: str = "identity"
    data_dir: str = "data"
    language: Language = "zh-CN"
    #: extra modules with a ``DRIVERS`` dict (site-specific drivers)
    plugins: Annotated[tuple[str, ...], Meta(examples=[["my_site.drivers"]])] = ()
    #: every device of this hub is a simulator (demo, training rig); each reading is flagged
    #: "simulated" end to end, and the cloud keeps it from the HIS and the MCH platform
    simulated: bool = False


class _StorageTable(_Section, frozen=True):
    min_free_mb: Annotated[int, Meta(ge=0, le=1_000_000)] = 200
    group_max: Annotated[int, Meta(ge=1, le=100_000)] = 4000
    #: days the hub keeps its audit log (who viewed or changed what); like the cloud's ``[audit]
    #: retention_days``: 400 by default, at least 183 (audit logs must be kept at least six months)
    audit_retention_days: Annotated[int, Meta(ge=183, le=3650, description=(
        "use 183 or more (audit logs must be kept at least six months), at most 3650"))] = 400


class _ThresholdsTable(_Section, frozen=True):
    bp_guideline: Guideline = "2018"
    session_window_s: Annotated[float, Meta(ge=5, le=86_400)] = 300.0  #: a station's default


class _HubFile(_Section, frozen=True):
    hub: _HubTable = _HubTable()
    sync: SyncConfig = SyncConfig()
    mqtt: MqttConfig | None = None
    web: WebConfig = WebConfig()
    storage: _StorageTable = _StorageTable()
    thresholds: _ThresholdsTable = _ThresholdsTable()
    stations: Annotated[tuple[_StationTable, ...], Meta(examples=[[{"id": "room-1"}]])] = ()


_HUB, _STORAGE, _THRESHOLDS = _HubTable(), _StorageTable(), _ThresholdsTable()


@dataclass(frozen=True)
class HubConfig:
    """The whole validated configuration (defaults: those of the hub.toml sections above)."""

    path: Path
    identity_dir: Path
    data_dir: Path
    language: str = _HUB.language
    plugins: tuple[str, ...] = _HUB.plugins
    stations: tuple[StationConfig, ...] = ()
    sync: SyncConfig = field(default_factory=SyncConfig)
    mqtt: MqttConfig | None = None
    web: WebConfig = field(default_factory=WebConfig)
    min_free_mb: int = _STORAGE.min_free_mb
    bp_guideline: str = _THRESHOLDS.bp_guideline
    group_max: int = _STORAGE.group_max
    audit_retention_days: int = _STORAGE.audit_retention_days
    #: things that work but should change (each names file, key and fix); logged at start
    warnings: tuple[str, ...] = ()
    simulated: bool = _HUB.simulated  #: ``[hub] simulated = true``

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


def _example(p: SettingProblem) -> str:
    if p.example is not None:
        return toml_value(p.example)
    if p.expected in ("int", "float") and p.low is not None:
        return f"{number_text(p.low)}"
    return {"bool": toml_value(not p.default), "table": "{}", "list": "[]"}.get(p.expected, '"..."')


def _config_error(file: str, p: SettingProblem) -> ConfigError:
    """The message a hub.toml user gets for ``p``: file, key, problem and fix."""
    key, name = dotted(p.key), p.name
    if p.kind == "unknown":
        known = ", ".join(sorted(p.known)) or "none"
        return ConfigError(file, key, "is not a known setting", f"remove it or check the spelling (known: {known})")
    if p.kind == "missing":
        return ConfigError(file, key, "is missing", p.fix or f"add `{name} = {_example(p)}`")
    if p.kind == "type":
        shown = repr(p.value) if isinstance(p.value, bool) else type(p.value).__name__
        return ConfigError(file, key, f"has the wrong type ({shown})",
                           p.fix or f"write it like `{name} = {_example(p)}`")
    if p.kind == "range" and p.low is not None and p.high is not None:
        return ConfigError(file, key, f"is {p.value}, outside {number_text(p.low)}..{number_text(p.high)}",
                           p.fix or f"choose a value between {number_text(p.low)} and {number_text(p.high)}")
    if p.kind == "choice":
        return ConfigError(file, key, f"is {p.value!r}", "use one of: " + ", ".join(map(str, p.choices)))
    return ConfigError(file, key, f"is {p.value!r}", p.fix or "see docs/edge.md for what it takes")


def _path(base: Path, value: str | Path) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def load(path: str | Path, driver_kinds: Callable[[tuple[str, ...]], Mapping[str, Any]] | None = None) -> HubConfig:
    """Read and validate hub.toml; raises :class:`ConfigError`.

    ``driver_kinds(plugins)`` lists the known driver names; by default
    :func:`edge.plugins.known_drivers` (the registry and the site's plugins).
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
    _serial_ports_in_address(file, raw)
    try:
        doc = decode(raw, _HubFile)
    except SettingError as exc:
        raise _config_error(file, exc.problem) from None
    base = path.resolve().parent
    url = doc.sync.url
    if url is not None and not url.startswith(("http://", "https://")):
        raise ConfigError(file, "sync.url", f"is {url!r}", 'give the cloud address, e.g. "https://cloud.example.cn"')
    sync = msgspec.structs.replace(doc.sync, url=url.rstrip("/") or None) if url else doc.sync
    warnings: list[str] = []
    web = msgspec.structs.replace(doc.web, users=_users(file, doc.web.users, base, warnings))

    try:
        kinds = (driver_kinds or known_drivers)(doc.hub.plugins)
    except ImportError as exc:
        raise ConfigError(file, "hub.plugins", f"a plugin cannot be imported ({exc})",
                          "install it or remove it from the list") from exc
    stations = _stations(file, raw, doc.stations, doc.thresholds.session_window_s, kinds)
    h, st = doc.hub, doc.storage
    return HubConfig(path=path, identity_dir=_path(base, h.identity_dir), data_dir=_path(base, h.data_dir),
                     language=h.language, plugins=h.plugins, stations=stations, sync=sync, mqtt=doc.mqtt, web=web,
                     min_free_mb=st.min_free_mb, bp_guideline=doc.thresholds.bp_guideline, group_max=st.group_max,
                     audit_retention_days=st.audit_retention_days,
                     warnings=tuple(warnings), simulated=h.simulated)


def _serial_ports_in_address(file: str, raw: dict[str, Any]) -> None:
    """A serial path written as ``port`` (every serial driver reads it from ``address``)."""
    stations = raw.get("stations")
    for i, station in enumerate(stations if isinstance(stations, list) else []):
        devices = station.get("devices") if isinstance(station, dict) else None
        for j, dev in enumerate(devices if isinstance(devices, list) else []):
            if isinstance(dev, dict) and isinstance(dev.get("port"), str):
                raise ConfigError(file, f"stations[{i}].devices[{j}].port", f"is {dev['port']!r}, not a number",
                                  f'write a serial port as address = "{dev["port"]}"; port is a TCP port '
                                  "(or, for modbus-rtu, the Modbus unit id)")


def _users(file: str, users: tuple[StaffUser, ...], base: Path, warnings: list[str]) -> tuple[StaffUser, ...]:
    """Each user's hash, read from its secret file (or, deprecated, inline); one entry per name."""
    done: list[StaffUser] = []
    for i, u in enumerate(users):
        key = f"web.users[{i}]"
        if (u.secret_hash == "") == (u.secret_file is None):
            pin_file = base / "staff" / f"{u.name}.pin"
            raise ConfigError(file, f"{key}.secret_file",
                              "is missing" if u.secret_file is None else "is given together with secret_hash",
                              f"run `mchub edge hash-password --out {pin_file}` and write "
                              f'`secret_file = "staff/{u.name}.pin"` (and no secret_hash)')
        if u.secret_file is not None:
            secret_file = _path(base, u.secret_file)
            u = msgspec.structs.replace(u, secret_hash=_secret_file(file, key, secret_file), secret_file=secret_file)
        else:
            if not u.secret_hash.startswith("scrypt$") or u.secret_hash.count("$") != 5:
                raise ConfigError(file, f"{key}.secret_hash", "is not a scrypt hash",
                                  "run `mchub edge hash-password --out FILE` and set secret_file "
                                  "(never the PIN itself)")
            warnings.append(f"{file}: {key}.secret_hash: the PIN hash is inline in hub.toml, which others "
                            f"may read (a 6-digit PIN falls to a guessing run on a copy of it)\n  fix: run "
                            f"`mchub edge move-secrets --config {file}` (moves every inline hash to its own "
                            f"0600 file and writes secret_file)")
        if u.name in {x.name for x in done}:
            raise ConfigError(file, f"{key}.name", f"{u.name!r} is listed twice", "give every user one entry")
        done.append(u)
    return tuple(done)


def _secret_file(file: str, user_key: str, path: Path) -> str:
    """The scrypt hash in a staff secret file; refused when missing, readable by others or not a hash."""
    key = f"{user_key}.secret_file"
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise ConfigError(file, key, f"{path} does not exist", f"run `mchub edge hash-password --out {path}`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(file, key, f"{path} cannot be read: {exc}",
                          "check the path and that the hub's user owns it") from exc
    if mode & 0o077:
        raise ConfigError(file, key, f"{path} is readable by others (mode {mode & 0o777:04o})",
                          f"run `chmod 600 {path}`")
    if not text.startswith("scrypt$") or text.count("$") != 5:
        raise ConfigError(file, key, f"{path} does not hold a scrypt hash",
                          f"run `mchub edge hash-password --out {path}` (it writes the hash, never the PIN)")
    return text


def _stations(file: str, raw: dict[str, Any], tables: tuple[_StationTable, ...], window: float,
              kinds: Mapping[str, Any]) -> tuple[StationConfig, ...]:
    stations: list[StationConfig] = []
    station_ids: set[str] = set()
    device_ids: set[str] = set()
    for i, t in enumerate(tables):
        if t.id in station_ids:
            raise ConfigError(file, f"stations[{i}].id", f"{t.id!r} is used by two stations",
                              "give every station its own id")
        station_ids.add(t.id)
        devices: list[DeviceConfig] = []
        for j, d in enumerate(t.devices):
            key = f"stations[{i}].devices[{j}]"
            if d.id in device_ids:
                raise ConfigError(file, f"{key}.id", f"{d.id!r} is used by two devices", "give every device its own id")
            device_ids.add(d.id)
            if d.driver not in kinds:
                known = ", ".join(sorted(kinds)) or "none are installed in this build"
                raise ConfigError(file, f"{key}.driver", f"unknown driver {d.driver!r}", f"use one of: {known}")
            devices.append(msgspec.structs.replace(d, station_id=t.id, options=dict(raw["stations"][i]["devices"][j])))
        stations.append(StationConfig(id=t.id, name=t.id if t.name is None else t.name,
                                      session_window_s=window if t.session_window_s is None else t.session_window_s,
                                      devices=tuple(devices)))
    return tuple(stations)


def validate_devices(cfg: HubConfig) -> None:
    """Build every configured driver once, so a bad device table fails at start, naming its key.

    Driver factories only read their table (no I/O happens until ``run``); a
    ``drivers.errors.ConfigError`` becomes an :class:`edge.errors.ConfigError`.
    """
    kinds = known_drivers(cfg.plugins)
    for i, station in enumerate(cfg.stations):
        for j, device in enumerate(station.devices):
            if device.driver not in kinds:  # a device the cloud pushed, of a kind this hub does not ship
                raise ConfigError(str(cfg.path), f"stations[{i}].devices[{j}].driver",
                                  f"device {device.id!r}: this hub has no driver {device.driver!r}",
                                  "register the device with one of: " + ", ".join(sorted(kinds))
                                  + " (`mchub decode --list`), or upgrade mchub on this hub")
            try:
                kinds[device.driver](device.id, device.options)
            except (DriverConfigError, KeyError, ValueError, TypeError) as exc:
                raise ConfigError(str(cfg.path), f"stations[{i}].devices[{j}]",
                                  f"driver {device.driver!r} refuses this device: {exc}",
                                  "correct the device's keys (see the driver's documentation)") from exc
