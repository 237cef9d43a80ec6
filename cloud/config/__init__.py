"""cloud.toml: the cloud server's configuration, checked completely before anything starts.

Every error names the file, the ``[section] key`` and how to fix it, e.g.::

    cloud.toml: [database] url: 'mysql://x' is not supported.
      Fix: use postgresql://USER@HOST:PORT/DB or sqlite:///path/to/cloud.db

Each key is declared once, in its section's msgspec Struct (type, default, bounds; see
docs/decisions.md "Configuration validation"); :func:`protocol.settings.decode` checks the
file against them and :func:`cloud.config.checks.config_error` words what is wrong.
Relative paths are relative to the directory of the configuration file. A minimal
file for the embedded default (SQLite, one worker) is just::

    [database]
    url = "sqlite:///cloud.db"
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from cloud.config.checks import Section, config_error, resolve
from cloud.config.checks import err as _err
from cloud.config.example import EXAMPLE
from cloud.config.integration import (
    HisConfig,
    MllpConfig,
    integration,
    mllp_networks,
)
from cloud.dicom.config import DicomConfig
from cloud.errors import ConfigError
from protocol.settings import SettingError, decode

__all__ = ["EXAMPLE", "CloudConfig", "DicomConfig", "HisConfig", "MllpConfig", "load", "mllp_networks", "parse"]

Positive = Annotated[int, Meta(gt=0)]
PositiveFloat = Annotated[float, Meta(gt=0)]


class ServerConfig(Section, frozen=True):
    """[server]"""

    host: str = "127.0.0.1"
    port: Annotated[int, Meta(gt=0, le=65535)] = 8443
    workers: Annotated[int, Meta(gt=0, le=64)] = 1
    max_batch_bytes: Positive = 32 << 20
    max_inflight: Positive = 32
    max_queue: Positive = 256
    retry_after_s: Positive = 5


class DatabaseConfig(Section, frozen=True):
    """[database]"""

    url: str = "sqlite:///cloud.db"
    pool_size: Annotated[int, Meta(gt=0, le=500)] = 10

    @property
    def is_postgres(self) -> bool:
        """True for a PostgreSQL URL."""
        return self.url.startswith(("postgresql://", "postgres://"))


class KeysConfig(Section, frozen=True):
    """[keys]"""

    dir: Path = Path("keys")


class AdminConfig(Section, frozen=True):
    """[admin]: ``token_file`` unset ("") = the admin API is disabled."""

    token_file: Path | None = None


class MqttConfig(Section, frozen=True):
    """[mqtt]"""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 1883


class FleetConfig(Section, frozen=True):
    """[fleet] (issue 19): hub presence, and whether simulated readings may leave the cloud."""

    #: a hub is online while a batch, telemetry or MQTT status message arrived within this many seconds
    presence_window_s: float = 180.0
    #: this deployment is a training rig / demo: readings flagged "simulated" may go to the HIS and the
    #: MCH platform (which are then simulators or test systems); false everywhere patients are measured
    training_rig: bool = False


class ProvisioningConfig(Section, frozen=True):
    """[provisioning] (paths resolved; ``ca_dir`` None = enrollment disabled)."""

    ca_dir: Path | None = None
    passphrase_file: Path | None = None
    mqtt_url: Annotated[str, Meta(examples=["mqtts://mqtt.example.org:8883"])] = "mqtt://127.0.0.1:1883"
    hub_cert_days: Annotated[int, Meta(gt=0, le=397)] = 30
    rotation_overlap_hours: Annotated[int, Meta(gt=0, le=24 * 30)] = 24
    mqtt_password_file: Path | None = None
    mqtt_reload_command: Annotated[tuple[str, ...], Meta(examples=[["systemctl", "reload", "mosquitto"]])] = ()


class OutboxConfig(Section, frozen=True):
    """[outbox]"""

    max_attempts: Positive = 10
    base_delay_s: PositiveFloat = 5.0  # protocol.backoff needs a start above 0
    max_delay_s: PositiveFloat = 3600.0


class WebConfig(Section, frozen=True):
    """[web]: the dashboard and admin console (cloud/web)."""

    idle_timeout_s: Positive = 900
    secure_cookie: bool = True
    max_failures: Positive = 5
    lock_s: Positive = 900
    #: a sign-in with an older password is refused as expired; 0 = never
    password_max_age_days: Annotated[int, Meta(ge=0, le=3650)] = 0


class MchConfig(Section, frozen=True):
    """[mch] (docs/mch.md)"""

    enabled: bool = False
    platform_url: Annotated[str, Meta(examples=["https://mch.example.gov.cn"])] = ""
    app_key: str = ""
    secret_file: str = "mch.secret"  # noqa: S105 - a file name, not a secret
    algorithm: Literal["HMAC-SHA256", "HMAC-SM3"] = "HMAC-SHA256"
    profile: str = ""
    rate_per_s: PositiveFloat = 5.0
    timeout_s: PositiveFloat = 10.0
    lease_s: PositiveFloat = 60.0
    assemble_interval_s: PositiveFloat = 10.0
    default_site: str = "default"


class LoggingConfig(Section, frozen=True):
    """[logging]"""

    level: Annotated[str, Meta(examples=["INFO"])] = "INFO"
    json: bool = True


class AuditConfig(Section, frozen=True):
    """[audit]: hash-chained audit log (cloud/audit/chain.py)"""

    retention_days: int = 400
    seal_interval_s: Annotated[float, Meta(gt=0, le=3600)] = 1.0
    prune_interval_s: PositiveFloat = 3600.0


class HttpConfig(Section, frozen=True):
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
    max_body_bytes: Positive = 1 << 20
    max_connections: Positive = 1000
    max_connections_per_ip: Positive = 64
    header_timeout_s: PositiveFloat = 10.0
    request_timeout_s: PositiveFloat = 300.0
    refusal_window_s: PositiveFloat = 60.0


class _CloudFile(Section, frozen=True):
    """cloud.toml as written: one field per section, in the order of the example file."""

    server: ServerConfig = ServerConfig()
    database: DatabaseConfig = DatabaseConfig()
    keys: KeysConfig = KeysConfig()
    admin: AdminConfig = AdminConfig()
    mqtt: MqttConfig = MqttConfig()
    provisioning: ProvisioningConfig = ProvisioningConfig()
    outbox: OutboxConfig = OutboxConfig()
    web: WebConfig = WebConfig()
    logging: LoggingConfig = LoggingConfig()
    mllp: MllpConfig = MllpConfig()
    his: HisConfig = HisConfig()
    dicom: DicomConfig = DicomConfig()
    mch: MchConfig = MchConfig()
    audit: AuditConfig = AuditConfig()
    fleet: FleetConfig = FleetConfig()
    http: HttpConfig = HttpConfig()


#: the sections cloud.toml may have (the demo asks which parts this build has)
SECTIONS: tuple[str, ...] = _CloudFile.__struct_fields__


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
    dicom: DicomConfig = field(default_factory=DicomConfig)
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


def parse(text: str, path: Path) -> CloudConfig:
    """Parse configuration text; ``path`` is used for messages and relative paths."""
    try:
        doc = decode(tomllib.loads(text), _CloudFile)
    except tomllib.TOMLDecodeError as exc:
        raise _err(path, "syntax", str(exc), "check quotes and brackets on that line (TOML syntax)") from exc
    except SettingError as exc:
        raise config_error(path, exc.problem) from None
    base = path.parent
    db = doc.database
    if db.url.startswith("sqlite:///"):
        db_path = Path(db.url.removeprefix("sqlite:///"))
        db = msgspec.structs.replace(db, url="sqlite:///" + str(db_path if db_path.is_absolute() else base / db_path))
        if doc.server.workers > 1:
            raise _err(path, "[server] workers", f"{doc.server.workers} workers cannot share an SQLite database",
                       "set workers = 1, or use PostgreSQL: [database] url = \"postgresql://...\"")
    elif not db.is_postgres:
        raise _err(path, "[database] url", f"{db.url.split(':')[0]!r} databases are not supported",
                   "use postgresql://USER@HOST:PORT/DB or sqlite:///path/to/cloud.db")
    o = doc.outbox
    if o.max_delay_s < o.base_delay_s:
        raise _err(path, "[outbox] max_delay_s", f"{o.max_delay_s} is below base_delay_s ({o.base_delay_s})",
                   "use a maximum at least as long as the first delay")
    lg = doc.logging
    if lg.level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise _err(path, "[logging] level", f"{lg.level!r} is not a level", "use DEBUG, INFO, WARNING or ERROR")
    if doc.audit.retention_days < 183:
        raise _err(path, "[audit] retention_days", f"{doc.audit.retention_days} days is less than six months",
                   "use 183 or more (audit logs must be kept at least six months)")
    if doc.fleet.presence_window_s < 10:  # must cover the hubs' telemetry interval (default 60 s)
        raise _err(path, "[fleet] presence_window_s", f"{doc.fleet.presence_window_s} is too short",
                   "use 10 or more seconds, longer than the hubs' [mqtt] telemetry_interval_s")
    mllp, his, dicom = integration(path, doc.mllp, doc.his, doc.dicom)
    keys_dir = resolve(base, doc.keys.dir)
    assert keys_dir is not None
    return CloudConfig(
        path=path, server=doc.server, database=db, provisioning=_provisioning(path, doc.provisioning),
        mllp=mllp, his=his, dicom=dicom, keys_dir=keys_dir, admin_token_file=resolve(base, doc.admin.token_file),
        mqtt=doc.mqtt, outbox=o, logging=msgspec.structs.replace(lg, level=lg.level.upper()), web=doc.web,
        mch=_mch(path, doc.mch), audit=doc.audit, fleet=doc.fleet, http=_http(path, doc.http),
    )


def _http(path: Path, h: HttpConfig) -> HttpConfig:
    """[http]: the token file resolved, proxy addresses parsed."""
    for item in (x.strip() for x in h.forwarded_allow_ips.split(",")):
        if item in ("*", ""):
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise _err(path, "[http] forwarded_allow_ips", f"{item!r} is not an address or network",
                       'list the proxy addresses, e.g. forwarded_allow_ips = "127.0.0.1, 10.0.0.5"') from None
    return msgspec.structs.replace(h, metrics_token_file=resolve(path.parent, h.metrics_token_file))


def _provisioning(path: Path, p: ProvisioningConfig) -> ProvisioningConfig:
    base = path.parent
    p = msgspec.structs.replace(p, ca_dir=resolve(base, p.ca_dir), passphrase_file=resolve(base, p.passphrase_file),
                                mqtt_password_file=resolve(base, p.mqtt_password_file))
    if p.ca_dir is not None and p.passphrase_file is None:
        raise _err(path, "[provisioning] passphrase_file", "missing while ca_dir is set",
                   "point it at a file (mode 0600) whose first line is the CA passphrase")
    if not p.mqtt_url.startswith(("mqtt://", "mqtts://")):
        raise _err(path, "[provisioning] mqtt_url", f"{p.mqtt_url!r} is not an MQTT URL",
                   "write e.g. mqtt_url = \"mqtts://mqtt.example.org:8883\"")
    return p


def _mch(path: Path, m: MchConfig) -> MchConfig:
    """[mch]: the URL and key checked, paths resolved (files are read when uploads start)."""
    if m.platform_url and not m.platform_url.startswith(("https://", "http://")):
        raise _err(path, "[mch] platform_url", f"{m.platform_url!r} is not an HTTP(S) URL",
                   'write e.g. platform_url = "https://mch.example.gov.cn"')
    if m.platform_url and not m.app_key:
        raise _err(path, "[mch] app_key", "is empty but platform_url is set", "set the app key the platform issued")

    def resolve_text(p: str) -> str:
        return p if not p or Path(p).is_absolute() else str(path.parent / p)

    return msgspec.structs.replace(m, secret_file=resolve_text(m.secret_file), profile=resolve_text(m.profile))


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
