"""A hub enrolled with ``mchub edge enroll``: its provisioning state directory is its identity.

``mchub edge enroll --cloud URL --token T --config hub.toml`` writes the state of
:mod:`provisioning.hubside` (``hub.pem``, ``ca.cert.pem``, ``bundle.json``,
``config.json``, ``mqtt.json``, ``identity.json``, ``verified.json``) into hub.toml's ``identity_dir`` and
adds the hub's own ``data.key``; nothing is copied by hand. From then on:

* :func:`edge.identity.load` gives the daemon its :class:`edge.identity.Identity`: the enrolled Ed25519
  key signs batches, batches are sealed to the first HPKE key of the CA-signed bundle,
  acks and commands are checked with the bundle's cloud signing key;
* :func:`with_enrollment` fills what hub.toml leaves out: ``[sync] url`` (the cloud the
  hub enrolled with), ``[mqtt]`` (broker and credentials from enrollment) and the devices
  the cloud registered for this hub (``mchub provision device add``) — merged after the
  stations of hub.toml;
* :func:`accept_config` takes a new configuration (``apply-config`` command, or fetched
  after a batch answer named a newer ``X-Mchub-Config-Version``) and keeps it when its
  signature verifies and its version is newer; the daemon then restarts the drivers only;
* :func:`rotate` replaces the key (``rotate-key`` command, or :func:`rotation_due`).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edge.config import DeviceConfig, HubConfig, MqttConfig, StationConfig
from edge.errors import EdgeError, IdentityError
from edge.identity import DATA_KEY, Identity, enrollment_state, is_enrolled, load_enrolled
from protocol.commands import CommandBody
from protocol.ids import now_ms
from provisioning import hubside
from provisioning.errors import ProvisioningError
from provisioning.inventory import HubConfig as Inventory
from provisioning.inventory import config_from_command, should_apply, verify_config

log = logging.getLogger("edge.enrolled")
STATION_WINDOW_S = 300.0  #: session window of a station that only the cloud's inventory names


def ensure_data_key(directory: Path) -> None:
    """Create the hub's data key (0600) unless it exists: it encrypts subjects in hub.db and stays here."""
    path = directory / DATA_KEY
    if path.exists():
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, AESGCM.generate_key(bit_length=256))
        os.fsync(fd)
    finally:
        os.close(fd)


def rotate(directory: Path) -> Identity:
    """New key and certificate from the cloud (the old key keeps verifying during the overlap)."""
    try:
        hubside.rotate(directory)
    except (ProvisioningError, OSError) as exc:
        raise IdentityError(f"key rotation failed, the hub keeps its current key: {exc}") from exc
    return load_enrolled(directory)


def rotation_due(directory: Path) -> bool:
    """True in the last third of the certificate's life."""
    return enrollment_state(directory).rotation_due(now_ms())


def accept_config(directory: Path, command: CommandBody | None = None,
                  check: Callable[[Inventory], None] | None = None) -> Inventory | None:
    """Verify and keep a newer configuration (from an ``apply-config`` command, else fetched from the cloud).

    Returns it when it is newer than the one kept, else None (a re-delivery changes nothing).
    ``check`` sees it before it is kept and raises (an EdgeError) to refuse it: a refused
    configuration is never stored, so the hub keeps running, and restarting with, the old one.
    """
    st = enrollment_state(directory)
    try:
        if command is not None:
            signed = config_from_command(command)
            incoming = verify_config(signed, st.cloud.signing_key, st.identity.hub_id)
        else:
            signed, incoming = hubside.fetch_config(st)
    except ProvisioningError as exc:
        raise IdentityError(f"configuration from the cloud refused: {exc}") from exc
    if not should_apply(st.config, incoming):
        return None
    if check is not None:
        check(incoming)
    hubside.store_config(directory, signed)
    return incoming


def merge_devices(cfg: HubConfig, inventory: Inventory) -> tuple[StationConfig, ...]:
    """hub.toml's stations plus the cloud's devices (cloud station N = station id "N", named as the admin named it
    on the cloud's devices page; hub.toml wins an id clash)."""
    stations = {s.id: s for s in cfg.stations}
    taken = {d.id for d in cfg.devices()}
    for st in inventory.stations:
        sid = str(st.station)
        added = []
        for d in st.devices:
            if d.id in taken:
                log.warning("cloud device %s has the id of a hub.toml device; hub.toml wins", d.id)
                continue
            table: dict[str, Any] = {"id": d.id, "driver": d.kind, "transport": d.transport, "address": d.address,
                                     **({"port": d.port} if d.port is not None else {}),
                                     **({"dialect": d.dialect} if d.dialect else {}), **d.options}
            added.append(DeviceConfig(id=d.id, driver=d.kind, station_id=sid, transport=d.transport,
                                      address=d.address, port=d.port, dialect=d.dialect, options=table))
        old = stations.get(sid) or StationConfig(sid, st.name or f"测量台 {sid} / station {sid}", STATION_WINDOW_S, ())
        stations[sid] = dataclasses.replace(old, devices=(*old.devices, *added))
    return tuple(stations.values())


def with_inventory(cfg: HubConfig, inventory: Inventory) -> HubConfig:
    """hub.toml (as loaded, before :func:`with_enrollment`) with the devices of ``inventory``."""
    return dataclasses.replace(cfg, stations=merge_devices(cfg, inventory))


def with_enrollment(cfg: HubConfig) -> HubConfig:
    """hub.toml completed from the enrollment (sync URL, MQTT, cloud-registered devices); unchanged if not enrolled."""
    if not is_enrolled(cfg.identity_dir):
        return cfg
    st = enrollment_state(cfg.identity_dir)
    sync = cfg.sync if cfg.sync.url else msgspec.structs.replace(cfg.sync, url=st.identity.cloud_url.rstrip("/"))
    mqtt = cfg.mqtt
    if mqtt is None and st.mqtt.url:
        u = urllib.parse.urlsplit(st.mqtt.url)
        mqtt = MqttConfig(host=u.hostname or "127.0.0.1", port=u.port or (8883 if u.scheme == "mqtts" else 1883),
                          username=st.mqtt.username, password=st.mqtt.password)
    return dataclasses.replace(cfg, sync=sync, mqtt=mqtt, stations=merge_devices(cfg, st.config))


def register(sub: Any) -> None:
    """Add ``enroll`` and ``rotate-key`` to ``mchub edge`` (state directory = hub.toml's identity_dir)."""
    from provisioning.enroll_cli import add_enroll_commands, run_enroll, run_rotate

    add_enroll_commands(sub)
    for name, handler in (("enroll", run_enroll), ("rotate-key", run_rotate)):
        p = sub.choices[name]
        p.add_argument("--config", default="/etc/mchub/hub.toml", type=Path,
                       help="网关配置文件 / hub.toml: its identity_dir receives the enrollment (unless "
                            "--state-dir is given)")
        p.set_defaults(state_dir=None, func=_with_state_dir(name, handler))


def _with_state_dir(name: str, handler: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        if args.state_dir is None:
            from edge import config as config_mod
            from edge.errors import EdgeError

            try:
                args.state_dir = config_mod.load(args.config).identity_dir
            except EdgeError as exc:
                print(f"{exc}\n(give --state-dir to enroll without a hub.toml)", file=sys.stderr)
                return 2
        code: int = handler(args)
        if code == 0 and name == "enroll":
            ensure_data_key(args.state_dir)
        return code

    return run


class Maintainer:
    """The daemon's side of an enrollment: newer configurations and key rotation, without a restart.

    Configuration pushes are a small state machine, reported in telemetry, on the status
    page and to the cloud (``X-Mchub-Config-Applied`` on every batch): the cloud's
    **desired** version (from an ``apply-config`` command or a batch answer), the
    **applied** version (the one the drivers run), and the **error** of the last refused
    attempt. ``applied < desired`` is "pending" until the hub has fetched, checked and
    applied the newer one; a refused configuration is never kept (:func:`accept_config`).
    """

    def __init__(self, directory: Path, reload: Any, set_identity: Any, check_every_s: float = 3600.0,
                 check: Callable[[Inventory], None] | None = None) -> None:
        self.directory = directory
        self.reload = reload  #: async () -> str: re-read hub.toml + enrollment, apply the device changes
        self.set_identity = set_identity  #: (Identity) -> None
        self.check_every_s = check_every_s
        self.check = check  #: raises EdgeError when the hub cannot run a configuration (before it is kept)
        self.version = enrollment_state(directory).config.version  #: the applied version
        self.desired = self.version  #: the newest version the cloud named
        self.error: str | None = None  #: why the last configuration was refused
        self._busy = False
        self._lock = asyncio.Lock()  #: one configuration change at a time (command and sync may race)

    def status(self) -> dict[str, Any]:
        """``{"state": "applied"|"pending"|"failed", "applied", "desired", "error"}`` for the status page."""
        st = "failed" if self.error else "pending" if self.desired > self.version else "applied"
        return {"state": st, "applied": self.version, "desired": self.desired, "error": self.error}

    async def apply(self, command: CommandBody | None = None) -> str:
        """Take a newer configuration (from the command, else from the cloud) and apply the device changes."""
        async with self._lock:
            try:
                incoming = await asyncio.to_thread(accept_config, self.directory, command, self.check)
            except EdgeError as exc:
                self.error = str(exc)
                raise
            if incoming is None:
                return f"configuration version {self.version} is current; nothing to do"
            self.desired = max(self.desired, incoming.version)
            try:
                done: str = await self.reload()
            except EdgeError as exc:
                self.error = f"configuration version {incoming.version} not applied: {exc}"
                raise
            self.version, self.error = incoming.version, None
            return f"configuration version {incoming.version} applied: {done}"

    def on_config_version(self, version: int) -> None:
        """A batch answer named the cloud's configuration version: fetch it when newer (in the background)."""
        self.desired = max(self.desired, version)
        if version <= self.version or self._busy:
            return
        self._busy = True

        async def fetch() -> None:
            try:
                log.info("%s", await self.apply())
            except EdgeError as exc:
                log.error("%s", exc)
            finally:
                self._busy = False

        task = asyncio.get_running_loop().create_task(fetch())
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def rotate(self) -> str:
        """Rotate the key now (``rotate-key`` command)."""
        identity = await asyncio.to_thread(rotate, self.directory)
        self.set_identity(identity)
        return f"key rotated: {identity.signer.public_key().public_bytes_raw().hex()}"

    async def run(self) -> None:
        """Rotate before the certificate expires (checked hourly)."""
        while True:
            await asyncio.sleep(self.check_every_s)
            try:
                if await asyncio.to_thread(rotation_due, self.directory):
                    log.info("%s", await self.rotate())
            except IdentityError as exc:
                log.error("scheduled key rotation failed (retried in %.0f s): %s", self.check_every_s, exc)


_background: set[asyncio.Task[None]] = set()
