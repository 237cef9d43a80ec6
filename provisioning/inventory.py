"""Device inventory: devices registered to a hub's stations, and the configuration document.

An admin registers a device with ``mchub provision device add --hub H --station 1 --kind
ble-bp --address AA:BB:CC:DD:EE:FF``. Each change bumps the hub's configuration
**version**. The cloud renders the hub's whole configuration as a :class:`HubConfig`
document, signs it with its Ed25519 signing key (:func:`sign_config`) and sends it with
the ``apply-config`` command over MQTT, and also returns it at enrollment and sync. The
hub checks the signature (:func:`verify_config`), ignores any document whose version is
not newer than the one it runs, and uses :func:`diff_devices` to start, stop or restart
only the drivers that changed — no restart of the hub daemon.

Addresses by transport (checked here, so a typo is refused at ``device add``, not at the
clinic): ``ble`` a MAC ``AA:BB:CC:DD:EE:FF``; ``serial`` a device path ``/dev/ttyUSB0``
(or ``COM3``); ``tcp`` / ``modbus-tcp`` a host name or IP plus ``port``; ``modbus-rtu`` a
serial path plus ``port`` = Modbus unit id 1-247. When ``transport`` is omitted it is
taken from the kind's prefix (``ble-bp`` -> ``ble``).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from protocol.commands import CommandBody, sign_command
from protocol.ids import uuid7
from provisioning.errors import ConfigDocumentError, InventoryError
from provisioning.stores import DeviceRecord

CONFIG_FORMAT = 1
#: the driver kinds mchub ships (``drivers.registry.driver_kinds()``; a test keeps the two equal): the
#: inventory refuses any other, so no hub is told to run a simulator or a kind it cannot run
SHIPPED_KINDS = ("ble-body-composition", "ble-bp", "ble-thermometer", "ble-weight", "idcard", "modbus-rtu",
                 "modbus-tcp", "mqtt", "serial-bp", "serial-station")
TRANSPORTS = ("ble", "serial", "tcp", "modbus-rtu", "modbus-tcp")
MAX_STATIONS = 99
MAX_OPTIONS = 32
_KIND = re.compile(r"[a-z][a-z0-9-]{1,31}")
_SLUG = re.compile(r"[A-Za-z0-9._-]{1,64}")
_MAC = re.compile(r"(?:[0-9A-F]{2}:){5}[0-9A-F]{2}")
_SERIAL = re.compile(r"/dev/[A-Za-z0-9._/-]{1,100}|COM[0-9]{1,3}")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")


def infer_transport(kind: str) -> str | None:
    """The transport a kind's prefix implies (``ble-bp`` -> ``ble``), or None."""
    for transport in sorted(TRANSPORTS, key=len, reverse=True):
        if kind.startswith(transport + "-"):
            return transport
    return None


def _check_address(transport: str, address: str, port: int | None) -> str:
    if transport == "ble":
        mac = address.upper().replace("-", ":")
        if not _MAC.fullmatch(mac):
            raise InventoryError(f"BLE address {address!r} is not a MAC like AA:BB:CC:DD:EE:FF")
        return mac
    if transport in ("serial", "modbus-rtu"):
        if not _SERIAL.fullmatch(address) or "/../" in address:
            raise InventoryError(f"serial port {address!r} is not a device path like /dev/ttyUSB0")
        if transport == "modbus-rtu" and (port is None or not 1 <= port <= 247):
            raise InventoryError("modbus-rtu needs --port = the Modbus unit id (1-247)")
        return address
    try:
        ipaddress.ip_address(address)
    except ValueError:
        if not _HOST.fullmatch(address):
            raise InventoryError(f"{address!r} is neither an IP address nor a host name") from None
    if port is None or not 1 <= port <= 65535:
        raise InventoryError(f"{transport} devices need --port (1-65535)")
    return address


def validate_device(device: DeviceRecord) -> DeviceRecord:
    """Check every field; return the record with its address normalised. Raises InventoryError."""
    if not _SLUG.fullmatch(device.device_id):
        raise InventoryError(f"device id {device.device_id!r}: use 1-64 of A-Z a-z 0-9 . _ -")
    if not 1 <= device.station <= MAX_STATIONS:
        raise InventoryError(f"station must be 1-{MAX_STATIONS}, not {device.station}")
    if not _KIND.fullmatch(device.kind):
        raise InventoryError(f"device kind {device.kind!r}: lower-case like ble-bp (see `mchub decode --list`)")
    if device.kind not in SHIPPED_KINDS:
        raise InventoryError(f"device kind {device.kind!r} is not a driver mchub ships; use one of: "
                             + ", ".join(SHIPPED_KINDS))
    if device.transport not in TRANSPORTS:
        raise InventoryError(f"transport {device.transport!r} is not one of {', '.join(TRANSPORTS)}")
    if device.dialect is not None and not _SLUG.fullmatch(device.dialect):
        raise InventoryError(f"dialect {device.dialect!r}: use 1-64 of A-Z a-z 0-9 . _ -")
    if len(device.options) > MAX_OPTIONS:
        raise InventoryError(f"at most {MAX_OPTIONS} options per device")
    for key, value in device.options.items():
        if not _SLUG.fullmatch(key) or (isinstance(value, str) and len(value) > 128):
            raise InventoryError(f"option {key!r}: names are 1-64 of A-Z a-z 0-9 . _ -, text values <= 128 chars")
    if len(device.label) > 64:
        raise InventoryError("a device label has at most 64 characters")
    address = _check_address(device.transport, device.address, device.port)
    return msgspec.structs.replace(device, address=address)


def default_device_id(station: int, kind: str, existing: Sequence[DeviceRecord]) -> str:
    """``s<station>-<kind>`` or, when taken, ``s<station>-<kind>-2``, ``-3`` ..."""
    taken = {d.device_id for d in existing}
    base = f"s{station}-{kind}"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def check_unique_address(device: DeviceRecord, existing: Sequence[DeviceRecord]) -> None:
    """A physical device is registered once per hub."""
    for other in existing:
        if (other.transport, other.address, other.port) == (device.transport, device.address, device.port):
            raise InventoryError(f"hub {device.hub_id} already has {other.device_id} at {device.address}")


# --- the configuration document ------------------------------------------------------------


class DeviceConfig(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One device as the hub's driver supervisor sees it."""

    id: str
    kind: str
    transport: str
    address: str
    port: int | None = None
    dialect: str | None = None
    options: dict[str, str | int | float | bool] = {}
    label: str = ""


class StationConfig(msgspec.Struct, frozen=True, kw_only=True):
    """One station and its devices."""

    station: int
    devices: tuple[DeviceConfig, ...]
    name: str = ""  #: the name an admin gave it (e.g. 一诊室); a hub that does not know the field ignores it


class HubConfig(msgspec.Struct, frozen=True, kw_only=True):
    """A hub's whole device configuration; applied only when ``version`` is newer."""

    format: int = CONFIG_FORMAT
    hub_id: str
    site_id: str
    site_name: str
    version: int
    issued_ms: int
    stations: tuple[StationConfig, ...]


class SignedConfig(msgspec.Struct, frozen=True):
    """Wire form: base64 JSON body and the cloud's Ed25519 signature over it."""

    body: str
    sig: str


def render_config(
    *, hub_id: str, site_id: str, site_name: str, version: int, devices: Sequence[DeviceRecord], now_ms: int,
    station_names: Mapping[int, str] | None = None,
) -> HubConfig:
    """Build the document from the hub's device records (stations in order, devices by id, with their names)."""
    names = station_names or {}
    stations: dict[int, list[DeviceConfig]] = {}
    for d in sorted(devices, key=lambda d: (d.station, d.device_id)):
        stations.setdefault(d.station, []).append(
            DeviceConfig(
                id=d.device_id, kind=d.kind, transport=d.transport, address=d.address, port=d.port,
                dialect=d.dialect, options=dict(d.options), label=d.label,
            )
        )
    return HubConfig(
        hub_id=hub_id, site_id=site_id, site_name=site_name, version=version, issued_ms=now_ms,
        stations=tuple(StationConfig(station=s, devices=tuple(ds), name=names.get(s, ""))
                       for s, ds in sorted(stations.items())),
    )


def sign_config(config: HubConfig, key: ed25519.Ed25519PrivateKey) -> SignedConfig:
    """Sign with the cloud's signing key (the one published in the CA bundle)."""
    raw = msgspec.json.encode(config)
    return SignedConfig(base64.b64encode(raw).decode(), base64.b64encode(key.sign(raw)).decode())


def verify_config(signed: SignedConfig, cloud_key: ed25519.Ed25519PublicKey, hub_id: str) -> HubConfig:
    """Hub side: check signature, format and addressee; raises ConfigDocumentError."""
    try:
        raw = base64.b64decode(signed.body, validate=True)
        cloud_key.verify(base64.b64decode(signed.sig, validate=True), raw)
    except (binascii.Error, InvalidSignature) as exc:
        raise ConfigDocumentError("configuration signature does not verify with the cloud key; not applied") from exc
    try:
        config = msgspec.json.decode(raw, type=HubConfig)
    except msgspec.DecodeError as exc:
        raise ConfigDocumentError(f"configuration document is invalid: {exc}") from exc
    if config.format != CONFIG_FORMAT:
        raise ConfigDocumentError(f"configuration format {config.format} is newer than this hub; upgrade mchub")
    if config.hub_id != hub_id:
        raise ConfigDocumentError(f"configuration is for hub {config.hub_id!r}, not this hub ({hub_id})")
    return config


def config_command(
    signed: SignedConfig, key: ed25519.Ed25519PrivateKey, *, hub_id: str, now_ms: int, ttl_ms: int = 7 * 86_400_000
) -> bytes:
    """The signed ``apply-config`` MQTT command carrying a configuration document (QoS 1 to the hub's topic)."""
    body = CommandBody(id=uuid7(now_ms), hub_id=hub_id, name="apply-config", issued_ms=now_ms,
                       expires_ms=now_ms + ttl_ms, args={"config": msgspec.json.encode(signed).decode()})
    return sign_command(body, key)


def config_from_command(command: CommandBody) -> SignedConfig:
    """Hub side: the document inside a verified ``apply-config`` command (then :func:`verify_config`)."""
    try:
        return msgspec.json.decode(command.args["config"], type=SignedConfig)
    except (KeyError, msgspec.DecodeError) as exc:
        raise ConfigDocumentError(f"apply-config command {command.id} carries no valid configuration") from exc


@dataclass(frozen=True)
class DeviceDiff:
    """What the hub must do to move from its running configuration to a new one."""

    start: tuple[DeviceConfig, ...]
    stop: tuple[str, ...]  #: device ids
    restart: tuple[DeviceConfig, ...]  #: same id, changed settings or station

    @property
    def empty(self) -> bool:
        """True when nothing changes."""
        return not (self.start or self.stop or self.restart)


def _by_id(config: HubConfig | None) -> dict[str, tuple[int, DeviceConfig]]:
    if config is None:
        return {}
    return {d.id: (s.station, d) for s in config.stations for d in s.devices}


def should_apply(current: HubConfig | None, incoming: HubConfig) -> bool:
    """True when ``incoming`` is newer than what runs (re-delivery of a version is a no-op)."""
    return current is None or incoming.version > current.version


def diff_devices(current: HubConfig | None, incoming: HubConfig) -> DeviceDiff:
    """Drivers to start, stop and restart, in device-id order."""
    old, new = _by_id(current), _by_id(incoming)
    return DeviceDiff(
        start=tuple(new[i][1] for i in sorted(new.keys() - old.keys())),
        stop=tuple(sorted(old.keys() - new.keys())),
        restart=tuple(new[i][1] for i in sorted(new.keys() & old.keys()) if new[i] != old[i]),
    )
