"""cloud.toml: the cloud server's configuration, checked completely before anything starts.

Every error names the file, the ``[section] key`` and how to fix it, e.g.::

    cloud.toml: [database] url: 'mysql://x' is not supported.
      Fix: use postgresql://USER@HOST:PORT/DB or sqlite:///path/to/cloud.db

Relative paths are relative to the directory of the configuration file. A minimal
file for the embedded default (SQLite, one worker) is just::

    [database]
    url = "sqlite:///cloud.db"
"""

from __future__ import annotations

import difflib
import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloud.config_checks import err as _err
from cloud.config_checks import file_path as _file
from cloud.config_checks import positive as _positive
from cloud.config_example import EXAMPLE
from cloud.config_integration import DicomSection, HisConfig, MllpConfig, integration, mllp_networks
from cloud.errors import ConfigError

__all__ = ["EXAMPLE", "CloudConfig", "DicomSection", "HisConfig", "MllpConfig", "load", "mllp_networks", "parse"]


@dataclass(frozen=True)
class ServerConfig:
    """[server]"""

    host: str = "127.0.0.1"
    port: int = 8443
    workers: int = 1
    max_batch_bytes: int = 32 << 20
    max_inflight: int = 32
    max_queue: int = 256
    retry_after_s: int = 5


@dataclass(frozen=True)
class DatabaseConfig:
    """[database]"""

    url: str = "sqlite:///cloud.db"
    pool_size: int = 10

    @property
    def is_postgres(self) -> bool:
        """True for a PostgreSQL URL."""
        return self.url.startswith(("postgresql://", "postgres://"))


@dataclass(frozen=True)
class MqttConfig:
    """[mqtt]"""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 1883


@dataclass(frozen=True)
class FleetConfig:
    """[fleet] (issue 19): hub presence, and whether simulated readings may leave the cloud."""

    #: a hub is online while a batch, telemetry or MQTT status message arrived within this many seconds
    presence_window_s: float = 180.0
    #: this deployment is a training rig / demo: readings flagged "simulated" may go to the HIS and the
    #: MCH platform (which are then simulators or test systems); false everywhere patients are measured
    training_rig: bool = False


@dataclass(frozen=True)
class ProvisioningConfig:
    """[provisioning] (paths resolved; ``ca_dir`` None = enrollment disabled)."""

    ca_dir: Path | None = None
    passphrase_file: Path | None = None
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    hub_cert_days: int = 30
    rotation_overlap_hours: int = 24
    mqtt_password_file: Path | None = None
    mqtt_reload_command: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutboxConfig:
    """[outbox]"""

    max_attempts: int = 10
    base_delay_s: float = 5.0
    max_delay_s: float = 3600.0


@dataclass(frozen=True)
class WebConfig:
    """[web]: the dashboard and admin console (cloud/web)."""

    idle_timeout_s: int = 900
    secure_cookie: bool = True
    max_failures: int = 5
    lock_s: int = 900
    password_max_age_days: int = 0  #: a sign-in with an older password is refused as expired; 0 = never


@dataclass(frozen=True)
class MchConfig:
    """[mch] (docs/mch.md)"""

    enabled: bool = False
    platform_url: str = ""
    app_key: str = ""
    secret_file: str = "mch.secret"  # noqa: S105 - a file name, not a secret
    algorithm: str = "HMAC-SHA256"
    profile: str = ""
    rate_per_s: float = 5.0
    timeout_s: float = 10.0
    lease_s: float = 60.0
    assemble_interval_s: float = 10.0
    default_site: str = "default"


@dataclass(frozen=True)
class LoggingConfig:
    """[logging]"""

    level: str = "INFO"
    json: bool = True


@dataclass(frozen=True)
class AuditConfig:
    """[audit]: hash-chained audit log (cloud/audit_chain.py)"""

    retention_days: int = 400
    seal_interval_s: float = 1.0
    prune_interval_s: float = 3600.0


@dataclass(frozen=True)
class HttpConfig:
    """[http]: the doors of the HTTP port (docs/deployment.md, docs/reliability.md).

    ``forwarded_allow_ips``: proxies whose X-Forwarded-For names the client (comma list of
    addresses or networks, "*" for any); connection and throttling limits key on that
    client. ``metrics_token_file``: bearer token for /metrics ("" = loopback clients only).
    ``max_body_bytes``: the body cap of routes without their own (batches:
    ``[server] max_batch_bytes``, enrolment 64 kB, STOW-RS ``[dicom] max_body_mb``).
    Connections per worker at most ``max_connections``, ``max_connections_per_ip`` from one
    client address (trusted proxies exempt); request headers must arrive within
    ``header_timeout_s`` and the whole request within ``request_timeout_s`` of its first
    byte (a dripping client cannot extend either). Refusals are audited as one row per
    source, route and reason every ``refusal_window_s``.
    """

    forwarded_allow_ips: str = "127.0.0.1"
    metrics_token_file: Path | None = None
    max_body_bytes: int = 1 << 20
    max_connections: int = 1000
    max_connections_per_ip: int = 64
    header_timeout_s: float = 10.0
    request_timeout_s: float = 300.0
    refusal_window_s: float = 60.0


@dataclass(frozen=True)
class CloudConfig:
    """The whole file, with paths resolved."""

    path: Path
    server: ServerConfig = field(default_factory=ServerConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    keys_dir: Path = Path("keys")
    admin_token_file: Path | None = None
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    provisioning: ProvisioningConfig = field(default_factory=ProvisioningConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    web: WebConfig = field(default_factory=WebConfig)
    mllp: MllpConfig = field(default_factory=MllpConfig)
    his: HisConfig = field(default_factory=HisConfig)
    dicom: DicomSection = field(default_factory=DicomSection)
    mch: MchConfig = field(default_factory=MchConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    fleet: FleetConfig = field(default_factory=FleetConfig)
    http: HttpConfig = field(default_factory=HttpConfig)

    def metrics_token(self) -> str | None:
        """The /metrics bearer token, or None (then /metrics answers loopback clients only)."""
        if self.http.metrics_token_file is None:
            return None
        try:
            token = self.http.metrics_token_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{self.path}: [http] metrics_token_file: cannot read {self.http.metrics_token_file}: "
                              f"{exc.strerror}.\n  Fix: create it (any long random string, mode 0600) or set "
                              "metrics_token_file = \"\"") from exc
        return token or None

    def admin_token(self) -> str | None:
        """The admin bearer token, or None when the admin API is disabled."""
        if self.admin_token_file is None:
            return None
        try:
            token = self.admin_token_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{self.path}: [admin] token_file: cannot read {self.admin_token_file}: "
                              f"{exc.strerror}.\n  Fix: create it (any long random string) or set "
                              "token_file = \"\"") from exc
        return token or None


_SECTIONS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "server": {"host": str, "port": int, "workers": int, "max_batch_bytes": int, "max_inflight": int,
               "max_queue": int, "retry_after_s": int},
    "database": {"url": str, "pool_size": int},
    "keys": {"dir": str},
    "admin": {"token_file": str},
    "mqtt": {"enabled": bool, "host": str, "port": int},
    "provisioning": {"ca_dir": str, "passphrase_file": str, "mqtt_url": str, "hub_cert_days": int,
                     "rotation_overlap_hours": int, "mqtt_password_file": str, "mqtt_reload_command": list},
    "outbox": {"max_attempts": int, "base_delay_s": (int, float), "max_delay_s": (int, float)},
    "logging": {"level": str, "json": bool},
    "web": {"idle_timeout_s": int, "secure_cookie": bool, "max_failures": int, "lock_s": int,
            "password_max_age_days": int},
    "mllp": {"enabled": bool, "host": str, "port": int, "tls_cert": str, "tls_key": str, "max_message_bytes": int,
             "idle_timeout_s": (int, float), "code_map": dict,
             "allow_any": bool, "allowed_senders": list, "allowed_apps": list, "max_connections": int,
             "max_connections_per_source": int, "frame_timeout_s": (int, float)},
    "his": {"enabled": bool, "host": str, "port": int, "tls_ca": str, "ack_timeout_s": (int, float),
            "attempts": int, "sending_facility": str, "receiving_app": str, "receiving_facility": str,
            "mrn_authority": str},
    "dicom": {"enabled": bool, "object_dir": str, "scp_enabled": bool, "scp_host": str, "scp_port": int,
              "ae_title": str, "allowed_calling_aets": (dict, list), "max_body_mb": int, "national_id_issuers": list},
    "mch": {"enabled": bool, "platform_url": str, "app_key": str, "secret_file": str, "algorithm": str,
            "profile": str, "rate_per_s": (int, float), "timeout_s": (int, float), "lease_s": (int, float),
            "assemble_interval_s": (int, float), "default_site": str},
    "audit": {"retention_days": int, "seal_interval_s": (int, float), "prune_interval_s": (int, float)},
    "fleet": {"presence_window_s": (int, float), "training_rig": bool},
    "http": {"forwarded_allow_ips": str, "metrics_token_file": str, "max_body_bytes": int, "max_connections": int,
             "max_connections_per_ip": int, "header_timeout_s": (int, float), "request_timeout_s": (int, float),
             "refusal_window_s": (int, float)},
}


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def _check_types(path: Path, doc: dict[str, Any]) -> None:
    for section, values in doc.items():
        if section not in _SECTIONS:
            raise _err(path, f"[{section}]", "unknown section",
                       f"{_suggest(section, list(_SECTIONS))}known sections: {', '.join(_SECTIONS)}")
        if not isinstance(values, dict):
            raise _err(path, section, "must be a [section] table", f"write [{section}] on its own line")
        for key, value in values.items():
            spec = _SECTIONS[section]
            if key not in spec:
                raise _err(path, f"[{section}] {key}", "unknown key",
                           f"{_suggest(key, list(spec))}known keys: {', '.join(spec)}")
            want = spec[key]
            types = want if isinstance(want, tuple) else (want,)
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                names = " or ".join(t.__name__ for t in types)
                raise _err(path, f"[{section}] {key}", f"{value!r} is a {type(value).__name__}, expected {names}",
                           f"write e.g. {key} = {EXAMPLE.split(key + ' = ')[1].split()[0]}")


def parse(text: str, path: Path) -> CloudConfig:
    """Parse configuration text; ``path`` is used for messages and relative paths."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _err(path, "syntax", str(exc), "check quotes and brackets on that line (TOML syntax)") from exc
    _check_types(path, doc)
    base = path.parent
    s = ServerConfig(**doc.get("server", {}))
    _positive(path, "[server] port", s.port, 65535)
    _positive(path, "[server] workers", s.workers, 64)
    for key in ("max_batch_bytes", "max_inflight", "max_queue", "retry_after_s"):
        _positive(path, f"[server] {key}", getattr(s, key))
    db = DatabaseConfig(**doc.get("database", {}))
    if db.url.startswith("sqlite:///"):
        db_path = Path(db.url.removeprefix("sqlite:///"))
        db = DatabaseConfig(url="sqlite:///" + str(db_path if db_path.is_absolute() else base / db_path),
                            pool_size=db.pool_size)
        if s.workers > 1:
            raise _err(path, "[server] workers", f"{s.workers} workers cannot share an SQLite database",
                       "set workers = 1, or use PostgreSQL: [database] url = \"postgresql://...\"")
    elif not db.is_postgres:
        raise _err(path, "[database] url", f"{db.url.split(':')[0]!r} databases are not supported",
                   "use postgresql://USER@HOST:PORT/DB or sqlite:///path/to/cloud.db")
    _positive(path, "[database] pool_size", db.pool_size, 500)
    keys_dir = Path(doc.get("keys", {}).get("dir", "keys"))
    token = doc.get("admin", {}).get("token_file", "")
    o = OutboxConfig(**doc.get("outbox", {}))
    _positive(path, "[outbox] max_attempts", o.max_attempts)
    _positive(path, "[outbox] base_delay_s", o.base_delay_s)  # protocol.backoff needs a start above 0
    _positive(path, "[outbox] max_delay_s", o.max_delay_s)
    if o.max_delay_s < o.base_delay_s:
        raise _err(path, "[outbox] max_delay_s", f"{o.max_delay_s} is below base_delay_s ({o.base_delay_s})",
                   "use a maximum at least as long as the first delay")
    web = WebConfig(**doc.get("web", {}))
    for key in ("idle_timeout_s", "max_failures", "lock_s"):
        _positive(path, f"[web] {key}", getattr(web, key))
    if web.password_max_age_days < 0:
        raise _err(path, "[web] password_max_age_days", f"{web.password_max_age_days} is negative",
                   "use 0 (passwords never expire) or a number of days, e.g. 180")
    lg = LoggingConfig(**doc.get("logging", {}))
    if lg.level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise _err(path, "[logging] level", f"{lg.level!r} is not a level", "use DEBUG, INFO, WARNING or ERROR")
    au = AuditConfig(**doc.get("audit", {}))
    if au.retention_days < 183:
        raise _err(path, "[audit] retention_days", f"{au.retention_days} days is less than six months",
                   "use 183 or more (audit logs must be kept at least six months)")
    _positive(path, "[audit] seal_interval_s", au.seal_interval_s, 3600)
    _positive(path, "[audit] prune_interval_s", au.prune_interval_s)
    prov = _provisioning(path, doc.get("provisioning", {}))
    mllp, his, dicom = integration(path, doc)
    return CloudConfig(
        path=path, server=s, database=db, provisioning=prov, mllp=mllp, his=his, dicom=dicom,
        keys_dir=keys_dir if keys_dir.is_absolute() else base / keys_dir,
        admin_token_file=(Path(token) if Path(token).is_absolute() else base / token) if token else None,
        mqtt=MqttConfig(**doc.get("mqtt", {})), outbox=o,
        logging=LoggingConfig(level=lg.level.upper(), json=lg.json), web=web, mch=_mch(path, doc.get("mch", {})),
        audit=au, fleet=_fleet(path, doc.get("fleet", {})), http=_http(path, doc.get("http", {})),
    )


def _fleet(path: Path, doc: dict[str, Any]) -> FleetConfig:
    """[fleet]: presence_window_s must cover the hubs' telemetry interval (default 60 s)."""
    f = FleetConfig(**doc)
    if f.presence_window_s < 10:
        raise _err(path, "[fleet] presence_window_s", f"{f.presence_window_s} is too short",
                   "use 10 or more seconds, longer than the hubs' [mqtt] telemetry_interval_s")
    return f



def _http(path: Path, table: dict[str, Any]) -> HttpConfig:
    """[http]: limits positive, the token file resolved, proxy addresses parsed."""

    raw = dict(table)
    raw["metrics_token_file"] = _file(path.parent, raw.get("metrics_token_file", ""))
    h = HttpConfig(**raw)
    for key in ("max_body_bytes", "max_connections", "max_connections_per_ip", "header_timeout_s",
                "request_timeout_s", "refusal_window_s"):
        _positive(path, f"[http] {key}", getattr(h, key))
    for item in (x.strip() for x in h.forwarded_allow_ips.split(",")):
        if item in ("*", ""):
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise _err(path, "[http] forwarded_allow_ips", f"{item!r} is not an address or network",
                       'list the proxy addresses, e.g. forwarded_allow_ips = "127.0.0.1, 10.0.0.5"') from None
    return h


def _provisioning(path: Path, doc: dict[str, Any]) -> ProvisioningConfig:
    def resolved(key: str) -> Path | None:
        value = doc.get(key, "")
        return None if not value else Path(value) if Path(value).is_absolute() else path.parent / value

    p = ProvisioningConfig(ca_dir=resolved("ca_dir"), passphrase_file=resolved("passphrase_file"),
                           mqtt_url=doc.get("mqtt_url", "mqtt://127.0.0.1:1883"),
                           hub_cert_days=doc.get("hub_cert_days", 30),
                           rotation_overlap_hours=doc.get("rotation_overlap_hours", 24),
                           mqtt_password_file=resolved("mqtt_password_file"),
                           mqtt_reload_command=tuple(str(a) for a in doc.get("mqtt_reload_command", [])))
    if p.ca_dir is not None and p.passphrase_file is None:
        raise _err(path, "[provisioning] passphrase_file", "missing while ca_dir is set",
                   "point it at a file (mode 0600) whose first line is the CA passphrase")
    if not p.mqtt_url.startswith(("mqtt://", "mqtts://")):
        raise _err(path, "[provisioning] mqtt_url", f"{p.mqtt_url!r} is not an MQTT URL",
                   "write e.g. mqtt_url = \"mqtts://mqtt.example.org:8883\"")
    _positive(path, "[provisioning] hub_cert_days", p.hub_cert_days, 397)
    _positive(path, "[provisioning] rotation_overlap_hours", p.rotation_overlap_hours, 24 * 30)
    return p


def _mch(path: Path, table: dict[str, Any]) -> MchConfig:
    """[mch]: paths resolved, numbers and the algorithm checked (files are read when uploads start)."""
    m = MchConfig(**table)
    for key in ("rate_per_s", "timeout_s", "lease_s", "assemble_interval_s"):
        _positive(path, f"[mch] {key}", getattr(m, key))
    if m.algorithm not in ("HMAC-SHA256", "HMAC-SM3"):
        raise _err(path, "[mch] algorithm", f"{m.algorithm!r} is not supported", 'use "HMAC-SHA256" or "HMAC-SM3"')
    if m.platform_url and not m.platform_url.startswith(("https://", "http://")):
        raise _err(path, "[mch] platform_url", f"{m.platform_url!r} is not an HTTP(S) URL",
                   'write e.g. platform_url = "https://mch.example.gov.cn"')
    if m.platform_url and not m.app_key:
        raise _err(path, "[mch] app_key", "is empty but platform_url is set", "set the app key the platform issued")

    def resolve(p: str) -> str:
        return p if not p or Path(p).is_absolute() else str(path.parent / p)

    return MchConfig(**{**table, "secret_file": resolve(m.secret_file), "profile": resolve(m.profile)})


def load(path: str | Path) -> CloudConfig:
    """Read and check cloud.toml; raises ConfigError naming the file, key and fix."""
    p = Path(path).resolve()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{p}: file not found.\n  Fix: create it; `mchub cloud init --config {path}` "
                          "writes a commented example") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read: {exc}.\n  Fix: check permissions and that it is UTF-8 text") from exc
    return parse(text, p)
