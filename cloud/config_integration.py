"""cloud.toml's hospital sections: [mllp], [his] and [dicom] (docs/hl7.md, docs/dicom.md)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloud.config_checks import err as _err
from cloud.config_checks import file_path as _file
from cloud.config_checks import positive as _positive
from cloud.errors import ConfigError
from protocol.errors import ProtocolError
from protocol.hl7.codemap import CodeMap


@dataclass(frozen=True)
class MllpConfig:
    """[mllp]: the HL7 listener (one process owns the port; see cloud/integration/service.py)."""

    enabled: bool = False
    host: str = "127.0.0.1"  #: loopback unless configured (a HIS on the LAN needs the LAN address)
    port: int = 2575
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_message_bytes: int = 1 << 20
    idle_timeout_s: float = 900.0
    code_map: dict[str, Any] = field(default_factory=dict)  #: validated with protocol.hl7.codemap
    # -- who may send, and how much (issue 16 allow-list, issue 17 finding 6); docs/hl7.md "Who may send"
    allow_any: bool = False  #: true: any address may connect (must be said explicitly)
    allowed_senders: tuple[str, ...] = ("127.0.0.1", "::1")  #: addresses or networks (CIDR) that may connect
    allowed_apps: tuple[str, ...] = ()  #: "APP" or "APP|FACILITY" (MSH-3, MSH-4) accepted; empty: any
    max_connections: int = 256  #: open connections in total
    max_connections_per_source: int = 32  #: open connections from one address
    frame_timeout_s: float = 60.0  #: a started frame must be complete within this (a dripping client is closed)


@dataclass(frozen=True)
class HisConfig:
    """[his]: where vitals ORU^R01 messages go."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 2576
    tls_ca: Path | None = None
    ack_timeout_s: float = 30.0
    attempts: int = 3
    sending_facility: str = ""
    receiving_app: str = "HIS"
    receiving_facility: str = ""
    mrn_authority: str = ""


@dataclass(frozen=True)
class DicomSection:
    """[dicom]: ``table`` is checked by cloud.dicom.service.DicomConfig when enabled (paths resolved)."""

    enabled: bool = False
    table: dict[str, Any] = field(default_factory=dict)


def mllp_networks(m: MllpConfig) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """``allowed_senders`` as networks (checked by :func:`parse` already)."""
    return tuple(ipaddress.ip_network(a, strict=False) for a in m.allowed_senders)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it resolves to some interface
        return False


def _mllp_senders(path: Path, m: MllpConfig) -> None:
    """[mllp] allow-list and limits: addresses parse, and an open port says who may use it."""
    _positive(path, "[mllp] max_connections", m.max_connections, 100_000)
    _positive(path, "[mllp] max_connections_per_source", m.max_connections_per_source, m.max_connections)
    _positive(path, "[mllp] frame_timeout_s", m.frame_timeout_s, 3600)
    for value in m.allowed_senders:
        if not isinstance(value, str):
            raise _err(path, "[mllp] allowed_senders", f"{value!r} is not a string",
                       'write addresses in quotes: allowed_senders = ["10.1.2.3", "10.1.5.0/24"]')
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise _err(path, "[mllp] allowed_senders", f"{value!r} is not an IP address or network",
                       'give addresses or CIDR networks: allowed_senders = ["10.1.2.3", "10.1.5.0/24"]') from None
    for value in m.allowed_apps:
        if not isinstance(value, str) or not value.strip("|"):
            raise _err(path, "[mllp] allowed_apps", f"{value!r} is not a sending application",
                       'give MSH-3 or MSH-3|MSH-4 values: allowed_apps = ["LIS", "HIS|HOSP"]')
    loopback_only = all(ipaddress.ip_network(a, strict=False).is_loopback for a in m.allowed_senders)
    if m.enabled and not m.allow_any and loopback_only and not _is_loopback(m.host):
        raise _err(path, "[mllp] allowed_senders", f"the listener is on {m.host} but only loopback may send",
                   'list the HIS/LIS addresses: allowed_senders = ["10.1.2.3"] (or allow_any = true to '
                   "accept any address, e.g. behind a firewall that already restricts it)")


def integration(path: Path, doc: dict[str, Any]) -> tuple[MllpConfig, HisConfig, DicomSection]:
    """[mllp], [his] and [dicom], checked; the code map and [dicom] through their own validators."""
    base = path.parent
    raw = dict(doc.get("mllp", {}))
    for key in ("tls_cert", "tls_key"):
        raw[key] = _file(base, raw.get(key, ""))
    for key in ("allowed_senders", "allowed_apps"):
        if key in raw:
            raw[key] = tuple(raw[key])
    m = MllpConfig(**raw)
    _positive(path, "[mllp] port", m.port, 65535)
    _positive(path, "[mllp] max_message_bytes", m.max_message_bytes, 256 << 20)
    _positive(path, "[mllp] idle_timeout_s", m.idle_timeout_s)
    _mllp_senders(path, m)
    if (m.tls_cert is None) != (m.tls_key is None):
        raise _err(path, "[mllp] tls_cert / tls_key", "only one of the two is set",
                   "set both (PEM certificate chain and its private key) or neither")
    for key in ("tls_cert", "tls_key"):
        file = getattr(m, key)
        if m.enabled and file is not None and not file.is_file():
            raise _err(path, f"[mllp] {key}", f"{file} does not exist", "give the path of a PEM file")
    try:
        CodeMap.from_config(m.code_map, str(path), "[mllp] code_map")
    except ProtocolError as exc:
        raise ConfigError(f"{exc}") from exc
    hraw = dict(doc.get("his", {}))
    hraw["tls_ca"] = _file(base, hraw.get("tls_ca", ""))
    h = HisConfig(**hraw)
    _positive(path, "[his] port", h.port, 65535)
    _positive(path, "[his] ack_timeout_s", h.ack_timeout_s, 3600)
    _positive(path, "[his] attempts", h.attempts, 20)
    if h.enabled and h.tls_ca is not None and not h.tls_ca.is_file():
        raise _err(path, "[his] tls_ca", f"{h.tls_ca} does not exist", "give the path of the HIS's PEM CA file")
    table = dict(doc.get("dicom", {}))
    enabled = bool(table.pop("enabled", False))
    if "object_dir" in table:
        table["object_dir"] = str(_file(base, table["object_dir"]))
    if enabled:
        from cloud.dicom.service import DicomConfig, DicomConfigError  # pydicom: only when DICOM is on

        try:
            DicomConfig.from_mapping(table, str(path))
        except DicomConfigError as exc:  # already names file, key and fix
            raise ConfigError(str(exc).replace(". Fix:", ".\n  Fix:")) from exc
    return m, h, DicomSection(enabled, table)
