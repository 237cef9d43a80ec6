"""DICOM C-STORE SCP (pynetdicom): the PACS pushes US, MG, SR and CT instances here.

* Listens on a configurable port (default 11112) with our AE title (default ``MCHUB``).
* Accepts associations only from calling AE titles in the allow-list; anyone else gets
  A-ASSOCIATE-RJ "calling AE title not recognised" (PS3.8 §9.3.4). The list must not be
  empty — an open SCP is a configuration error, not a default.
* Presentation contexts: every SOP class of :data:`~cloud.dicom.index.SOP_CLASSES`
  with every transfer syntax pynetdicom knows (the data set is stored as received, never
  transcoded), plus Verification (C-ECHO).
* Each received data set is framed as a Part 10 file and goes through the same
  :class:`~cloud.dicom.intake.Intake` as STOW-RS. The answer is 0x0000, or the failure
  status of the error (e.g. 0x0122, 0xA900, 0xC000, 0x0111, 0x0110) with an Error
  Comment.

pynetdicom runs each association in its own thread. ``on_indexed`` is a coroutine
function: it is run on the asyncio loop given to :meth:`StoreScp.start` and the
association thread waits for it, so the C-STORE status reflects the database outcome.
Never call a C-STORE SCU against this SCP from that loop's own thread.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from cloud.dicom.errors import CANNOT_UNDERSTAND, DicomError
from cloud.dicom.index import NATIONAL_ID_ISSUERS, SOP_CLASSES
from cloud.dicom.intake import Intake, OnIndexed
from cloud.dicom.objects import ObjectStore
from cloud.dicom.part10 import build_part10

log = logging.getLogger(__name__)

DEFAULT_PORT = 11112
DEFAULT_AE_TITLE = "MCHUB"


class ScpConfigError(DicomError):
    """The SCP configuration is unusable (empty allow-list, bad AE title)."""

    reason = "scp_config"


def _valid_ae_title(title: str) -> bool:
    return 0 < len(title.strip()) <= 16 and title.isascii() and title.isprintable() and "\\" not in title


class StoreScp:
    """A C-STORE SCP in background threads with :meth:`start` / :meth:`stop`."""

    def __init__(
        self,
        store: ObjectStore,
        on_indexed: OnIndexed | None,
        allowed_calling_aets: list[str],
        *,
        ae_title: str = DEFAULT_AE_TITLE,
        host: str = "0.0.0.0",
        port: int = DEFAULT_PORT,
        national_id_issuers: frozenset[str] = NATIONAL_ID_ISSUERS,
        callback_timeout: float = 60.0,
    ) -> None:
        if not allowed_calling_aets:
            raise ScpConfigError("dicom.allowed_calling_aets is empty: list the PACS AE titles allowed to send")
        bad = [t for t in [ae_title, *allowed_calling_aets] if not _valid_ae_title(t)]
        if bad:
            raise ScpConfigError(f"AE titles must be 1-16 printable ASCII characters without '\\': {bad}")
        self.intake = Intake(store, on_indexed, national_id_issuers)
        self.allowed = [t.strip() for t in allowed_calling_aets]
        self.ae_title = ae_title.strip()
        self.host = host
        self.port = port
        self.callback_timeout = callback_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None

    def _make_ae(self) -> AE:
        ae = AE(ae_title=self.ae_title)
        ae.require_calling_aet = self.allowed
        ae.require_called_aet = True  # the PACS must address us by our AE title
        for sop_class in SOP_CLASSES:
            ae.add_supported_context(sop_class, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        return ae

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> int:
        """Start listening; return the bound port. ``loop`` defaults to the running loop (if any)."""
        if self._server is not None:
            raise ScpConfigError("the C-STORE SCP is already running")
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        if loop is None and self.intake.on_indexed is not None:
            raise ScpConfigError("start() needs the asyncio loop that runs on_indexed (call it from that loop)")
        self._loop = loop
        try:
            self._server = self._make_ae().start_server(
                (self.host, self.port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._on_store)]
            )
        except OSError as exc:
            raise ScpConfigError(f"cannot listen on {self.host}:{self.port} for DICOM: {exc.strerror}") from exc
        port: int = self._server.server_address[1]
        log.info("DICOM C-STORE SCP %s listening on %s:%d, calling AEs allowed: %s",
                 self.ae_title, self.host, port, ", ".join(self.allowed))
        return port

    def stop(self) -> None:
        """Stop listening and close open associations (idempotent)."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None
            log.info("DICOM C-STORE SCP %s stopped", self.ae_title)

    async def __aenter__(self) -> StoreScp:
        self.start(asyncio.get_running_loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    def _on_store(self, event: Any) -> int | Dataset:
        """EVT_C_STORE handler (runs in the association's thread)."""
        calling = event.assoc.requestor.ae_title
        try:
            request = event.request
            data = build_part10(
                str(request.AffectedSOPClassUID),
                str(request.AffectedSOPInstanceUID),
                str(event.context.transfer_syntax),
                event.encoded_dataset(include_meta=False),
            )
        except Exception as exc:  # a request pynetdicom accepted but we cannot frame
            log.warning("C-STORE from %s could not be framed: %s", calling, exc)
            return _status(CANNOT_UNDERSTAND, f"cannot_frame: {type(exc).__name__}")
        outcome = self.intake.receive_blocking(data, self._loop, self.callback_timeout)
        if outcome.error is None:
            return 0x0000
        log.warning("C-STORE from %s refused: %s", calling, outcome.error)
        return _status(outcome.error.failure_reason, f"{outcome.error.reason}: {outcome.error}")


def _status(code: int, comment: str) -> Dataset:
    ds = Dataset()
    ds.Status = code
    ds.ErrorComment = comment[:64]
    return ds
