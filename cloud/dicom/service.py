"""The DICOM intake as one service for the cloud application: configuration, routes, SCP.

The ``[dicom]`` table of ``cloud.toml``::

    [dicom]
    object_dir = "/var/lib/mchub/dicom"     # required: where instances are stored
    allowed_calling_aets = { PACS1 = ["10.1.2.3", "10.1.9.0/24"] }  # AE title -> addresses; required
                                            # when the SCP is enabled
    scp_enabled = true                      # C-STORE SCP on/off (default true)
    scp_host = "0.0.0.0"
    scp_port = 11112
    ae_title = "MCHUB"
    max_body_mb = 512                       # STOW-RS request limit
    national_id_issuers = ["NNCHN", "身份证"] # replaces the default list

STOW-RS senders are not configured here: their credentials live in the database
(``mchub cloud dicom-sender add``, the admin console's DICOM senders page).

Wiring: :class:`cloud.integration.service.Integration` builds it from ``[dicom]`` (with
``enabled = true``) and :class:`cloud.integration.dicom_link.DicomLink` as ``on_indexed``,
:class:`~cloud.integration.dicom_senders.SenderAuth` as the STOW-RS ``authorise`` and
:class:`~cloud.integration.dicom_senders.DicomRefusals` for refused associations; it binds
the at-rest key with :meth:`DicomService.bind_sealer` before serving. Every HTTP worker
mounts the STOW-RS routes, only the integration owner starts the SCP::

    dicom = DicomService(DicomConfig.from_mapping(cfg.dicom.table, "cloud.toml"), on_indexed,
                         authorise=auth, on_refused=refusals)
    app = Starlette(routes=[*other_routes, *dicom.routes()], lifespan=...)
    # in the lifespan: await dicom.start() ... await dicom.stop()

``on_indexed(index, path)`` is awaited on the application's loop for every stored
instance (also for an identical resend; it must be idempotent on SOP Instance UID).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.routing import BaseRoute

from cloud.dicom.credentials import Authorise
from cloud.dicom.errors import DicomError
from cloud.dicom.index import NATIONAL_ID_ISSUERS
from cloud.dicom.intake import OnIndexed
from cloud.dicom.multipart import MAX_BODY_BYTES
from cloud.dicom.objects import ObjectStore, Sealer
from cloud.dicom.scp import DEFAULT_AE_TITLE, DEFAULT_PORT, OnRefused, ScpConfigError, StoreScp, parse_networks
from cloud.dicom.stow import stow_routes


class DicomConfigError(DicomError):
    """The ``[dicom]`` configuration is wrong; the message names the file, key and fix."""

    reason = "config"


_KEYS = {"object_dir", "allowed_calling_aets", "scp_enabled", "scp_host", "scp_port", "ae_title", "max_body_mb",
         "national_id_issuers"}


@dataclass(frozen=True)
class DicomConfig:
    """Validated settings of the DICOM intake."""

    object_dir: Path
    allowed_calling_aets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    scp_enabled: bool = True
    scp_host: str = "0.0.0.0"
    scp_port: int = DEFAULT_PORT
    ae_title: str = DEFAULT_AE_TITLE
    max_body_bytes: int = MAX_BODY_BYTES
    national_id_issuers: frozenset[str] = NATIONAL_ID_ISSUERS

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any], source: str = "cloud.toml") -> DicomConfig:
        """Build from the ``[dicom]`` table; raise :class:`DicomConfigError` naming file, key and fix."""

        def fail(key: str, problem: str, fix: str) -> DicomConfigError:
            return DicomConfigError(f"{source}: [dicom] {key}: {problem}. Fix: {fix}")

        unknown = sorted(set(table) - _KEYS)
        if unknown:
            raise fail(unknown[0], "unknown key", f"remove it; known keys are {', '.join(sorted(_KEYS))}")
        obj = table.get("object_dir")
        if not isinstance(obj, str) or not obj:
            raise fail("object_dir", "missing", 'set object_dir = "/var/lib/mchub/dicom" (a writable directory)')
        aets = table.get("allowed_calling_aets", {})
        example = 'allowed_calling_aets = { PACS1 = ["10.1.2.3"] } (AE title = the addresses it sends from)'
        if isinstance(aets, list):
            raise fail("allowed_calling_aets", "a list of AE titles is not enough: each title must be bound to the "
                       "addresses it may send from", f"write {example}")
        if not isinstance(aets, Mapping) or not all(
                isinstance(a, list) and all(isinstance(x, str) for x in a) for a in aets.values()):
            raise fail("allowed_calling_aets", "must map each AE title to a list of addresses", f"write {example}")
        for title, addresses in aets.items():
            try:
                parse_networks(title, addresses)
            except ScpConfigError as exc:
                raise fail(f"allowed_calling_aets.{title}", str(exc).split(": ", 1)[-1].split(", e.g.")[0],
                           f"write {example}") from exc
        enabled = table.get("scp_enabled", True)
        if not isinstance(enabled, bool):
            raise fail("scp_enabled", "must be true or false", "scp_enabled = true")
        if enabled and not aets:
            raise fail("allowed_calling_aets", "empty while the C-STORE SCP is enabled",
                       "list the PACS AE titles allowed to send, or set scp_enabled = false")
        port = table.get("scp_port", DEFAULT_PORT)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise fail("scp_port", f"{port!r} is not a TCP port", "use 11112 (or any 1-65535)")
        size = table.get("max_body_mb", MAX_BODY_BYTES // (1024 * 1024))
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise fail("max_body_mb", f"{size!r} is not a positive whole number", "max_body_mb = 512")
        issuers = table.get("national_id_issuers")
        if issuers is not None and (not isinstance(issuers, list) or not all(isinstance(i, str) for i in issuers)):
            raise fail("national_id_issuers", "must be a list of strings", 'e.g. ["NNCHN", "身份证"]')
        host, title = table.get("scp_host", "0.0.0.0"), table.get("ae_title", DEFAULT_AE_TITLE)
        if not isinstance(host, str) or not isinstance(title, str):
            raise fail("scp_host/ae_title", "must be strings", 'scp_host = "0.0.0.0", ae_title = "MCHUB"')
        return cls(
            object_dir=Path(obj),
            allowed_calling_aets={str(t): tuple(a) for t, a in aets.items()},
            scp_enabled=enabled,
            scp_host=host,
            scp_port=port,
            ae_title=title,
            max_body_bytes=size * 1024 * 1024,
            national_id_issuers=frozenset(i.strip().upper() for i in issuers) if issuers else NATIONAL_ID_ISSUERS,
        )


class DicomService:
    """STOW-RS routes and the C-STORE SCP sharing one object directory and one callback."""

    def __init__(self, config: DicomConfig, on_indexed: OnIndexed | None, *, authorise: Authorise | None,
                 on_refused: OnRefused | None = None) -> None:
        self.config = config
        self.store = ObjectStore(config.object_dir)
        self.on_indexed = on_indexed
        self.authorise = authorise
        self.scp: StoreScp | None = None
        self.scp_port: int | None = None
        if config.scp_enabled:
            try:
                self.scp = StoreScp(
                    self.store, on_indexed, config.allowed_calling_aets, ae_title=config.ae_title,
                    host=config.scp_host, port=config.scp_port, national_id_issuers=config.national_id_issuers,
                    on_refused=on_refused,
                )
            except ScpConfigError as exc:
                raise DicomConfigError(f"[dicom] {exc}") from exc

    def bind_sealer(self, sealer: Sealer) -> None:
        """Encrypt stored objects with this at-rest cipher (the SCP shares the same store)."""
        self.store.bind_sealer(sealer)

    def routes(self, prefix: str = "/dicomweb") -> list[BaseRoute]:
        """The STOW-RS routes to mount in the cloud application."""
        return stow_routes(self.store, self.on_indexed, authorise=self.authorise, prefix=prefix,
                           max_body_bytes=self.config.max_body_bytes,
                           national_id_issuers=self.config.national_id_issuers)

    async def start(self) -> None:
        """Start the C-STORE SCP (if enabled) with callbacks on the running loop."""
        if self.scp is not None and self.scp_port is None:
            self.scp_port = self.scp.start(asyncio.get_running_loop())

    async def stop(self) -> None:
        """Stop the SCP (waits for open associations to be closed)."""
        if self.scp is not None:
            await asyncio.to_thread(self.scp.stop)
            self.scp_port = None
