"""The DICOM intake as one service for the cloud application: configuration, routes, SCP.

Its configuration is the ``[dicom]`` table of ``cloud.toml``, declared once in
:class:`cloud.dicom.config.DicomConfig` (keys, defaults, bounds and the rules across keys).

STOW-RS senders are not configured here: their credentials live in the database
(``mchub cloud dicom-sender add``, the admin console's DICOM senders page).

Wiring: :class:`cloud.integration.service.Integration` builds it from ``[dicom]`` (with
``enabled = true``) and :class:`cloud.integration.dicom_link.DicomLink` as ``on_indexed``,
:class:`~cloud.integration.dicom_senders.SenderAuth` as the STOW-RS ``authorise`` and
:class:`~cloud.integration.dicom_senders.DicomRefusals` for refused associations; it binds
the at-rest key with :meth:`DicomService.bind_sealer` before serving. Every HTTP worker
mounts the STOW-RS routes, only the integration owner starts the SCP::

    dicom = DicomService(cfg.dicom.checked(str(cfg.path)), on_indexed,
                         authorise=auth, on_refused=refusals)
    app = Starlette(routes=[*other_routes, *dicom.routes()], lifespan=...)
    # in the lifespan: await dicom.start() ... await dicom.stop()

``on_indexed(index, path)`` is awaited on the application's loop for every stored
instance (also for an identical resend; it must be idempotent on SOP Instance UID).
"""

from __future__ import annotations

import asyncio

from starlette.routing import BaseRoute

from cloud.dicom.config import DicomConfig, DicomConfigError
from cloud.dicom.credentials import Authorise
from cloud.dicom.intake import OnIndexed
from cloud.dicom.objects import ObjectStore, Sealer
from cloud.dicom.scp import OnRefused, ScpConfigError, StoreScp

__all__ = ["DicomConfig", "DicomConfigError", "DicomService"]
from cloud.dicom.stow import stow_routes


class DicomService:
    """STOW-RS routes and the C-STORE SCP sharing one object directory and one callback."""

    def __init__(self, config: DicomConfig, on_indexed: OnIndexed | None, *, authorise: Authorise | None,
                 on_refused: OnRefused | None = None) -> None:
        if config.object_dir is None:
            raise DicomConfigError("[dicom] object_dir: missing (DicomConfig.checked refuses this)")
        self.config = config
        self.store = ObjectStore(config.object_dir)
        self.on_indexed = on_indexed
        self.authorise = authorise
        self.scp: StoreScp | None = None
        self.scp_port: int | None = None
        if config.scp_enabled:
            try:
                self.scp = StoreScp(
                    self.store, on_indexed, config.calling_aets, ae_title=config.ae_title,
                    host=config.scp_host, port=config.scp_port, national_id_issuers=config.issuers,
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
                           national_id_issuers=self.config.issuers)

    async def start(self) -> None:
        """Start the C-STORE SCP (if enabled) with callbacks on the running loop."""
        if self.scp is not None and self.scp_port is None:
            self.scp_port = self.scp.start(asyncio.get_running_loop())

    async def stop(self) -> None:
        """Stop the SCP (waits for open associations to be closed)."""
        if self.scp is not None:
            await asyncio.to_thread(self.scp.stop)
            self.scp_port = None
