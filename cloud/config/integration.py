"""cloud.toml's hospital sections: [mllp], [his] and [dicom] (docs/hl7.md, docs/dicom.md; [dicom]
is declared in cloud/dicom/config.py, the DICOM service's own configuration).

Each key is declared once, in its section's Struct (type, default, bounds); the checks
below are the rules that span keys or need a file or a validator of their own.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from cloud.config.checks import Section, resolve
from cloud.config.checks import err as _err
from cloud.config.checks import positive as _positive
from cloud.dicom.config import DicomConfig, DicomConfigError
from cloud.errors import ConfigError
from protocol.errors import ProtocolError
from protocol.hl7.codemap import CodeMap

_SENDERS_FIX = 'write addresses in quotes: allowed_senders = ["10.1.2.3", "10.1.5.0/24"]'


class MllpConfig(Section, frozen=True):
    """[mllp]: the HL7 listener (one process owns the port; see cloud/integration/service.py)."""

    enabled: bool = False
    host: str = "127.0.0.1"  #: loopback unless configured (a HIS on the LAN needs the LAN address)
    port: Annotated[int, Meta(gt=0, le=65535)] = 2575
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_message_bytes: Annotated[int, Meta(gt=0, le=256 << 20)] = 1 << 20
    idle_timeout_s: Annotated[float, Meta(gt=0)] = 900.0
    code_map: dict[str, Any] = msgspec.field(default_factory=dict)  #: validated with protocol.hl7.codemap
    # -- who may send, and how much (issue 16 allow-list, issue 17 finding 6); docs/hl7.md "Who may send"
    allow_any: bool = False  #: true: any address may connect (must be said explicitly)
    #: addresses or networks (CIDR) that may connect
    allowed_senders: Annotated[tuple[str, ...], Meta(description=_SENDERS_FIX)] = ("127.0.0.1", "::1")
    #: "APP" or "APP|FACILITY" (MSH-3, MSH-4) accepted; empty: any
    allowed_apps: tuple[str, ...] = ()
    max_connections: Annotated[int, Meta(gt=0, le=100_000)] = 256  #: open connections in total
    max_connections_per_source: Annotated[int, Meta(gt=0)] = 32  #: open connections from one address
    #: a started frame must be complete within this (a dripping client is closed)
    frame_timeout_s: Annotated[float, Meta(gt=0, le=3600)] = 60.0


class HisConfig(Section, frozen=True):
    """[his]: where vitals ORU^R01 messages go."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(gt=0, le=65535)] = 2576
    tls_ca: Path | None = None
    ack_timeout_s: Annotated[float, Meta(gt=0, le=3600)] = 30.0
    attempts: Annotated[int, Meta(gt=0, le=20)] = 3
    sending_facility: str = ""
    receiving_app: str = "HIS"
    receiving_facility: str = ""
    mrn_authority: str = ""


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
    _positive(path, "[mllp] max_connections_per_source", m.max_connections_per_source, m.max_connections)
    for value in m.allowed_senders:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise _err(path, "[mllp] allowed_senders", f"{value!r} is not an IP address or network",
                       'give addresses or CIDR networks: allowed_senders = ["10.1.2.3", "10.1.5.0/24"]') from None
    for value in m.allowed_apps:
        if not value.strip("|"):
            raise _err(path, "[mllp] allowed_apps", f"{value!r} is not a sending application",
                       'give MSH-3 or MSH-3|MSH-4 values: allowed_apps = ["LIS", "HIS|HOSP"]')
    loopback_only = all(ipaddress.ip_network(a, strict=False).is_loopback for a in m.allowed_senders)
    if m.enabled and not m.allow_any and loopback_only and not _is_loopback(m.host):
        raise _err(path, "[mllp] allowed_senders", f"the listener is on {m.host} but only loopback may send",
                   'list the HIS/LIS addresses: allowed_senders = ["10.1.2.3"] (or allow_any = true to '
                   "accept any address, e.g. behind a firewall that already restricts it)")


def integration(path: Path, mllp: MllpConfig, his: HisConfig, dicom: DicomConfig
                ) -> tuple[MllpConfig, HisConfig, DicomConfig]:
    """[mllp], [his] and [dicom] as decoded, checked across keys; the code map and [dicom] through their own
    validators; paths resolved next to the file."""
    base = path.parent
    m = msgspec.structs.replace(mllp, tls_cert=resolve(base, mllp.tls_cert), tls_key=resolve(base, mllp.tls_key))
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
    h = msgspec.structs.replace(his, tls_ca=resolve(base, his.tls_ca))
    if h.enabled and h.tls_ca is not None and not h.tls_ca.is_file():
        raise _err(path, "[his] tls_ca", f"{h.tls_ca} does not exist", "give the path of the HIS's PEM CA file")
    d = msgspec.structs.replace(dicom, object_dir=resolve(base, dicom.object_dir))
    if d.enabled:
        try:
            d = d.checked(str(path))
        except DicomConfigError as exc:  # already names file, key and fix
            raise ConfigError(str(exc)) from exc
    return m, h, d
