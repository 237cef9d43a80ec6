"""DICOM C-STORE SCP (pynetdicom): the PACS pushes US, MG, SR and CT instances here.

* Listens on a configurable port (default 11112) with our AE title (default ``MCHUB``).
* Accepts associations only from calling AE titles in the allow-list, each bound to the
  source addresses (IPs or networks) it may come from; anything else — an unknown title,
  or a known title from another address — gets A-ASSOCIATE-RJ "calling AE title not
  recognised" (PS3.8 §9.3.4) at association time, before any data set is read, and the
  refusal is reported to ``on_refused`` (the cloud audits it). The list must not be
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
import ipaddress
import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
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

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: ``on_refused(door, reason, peer, detail)``: awaited on the loop for every refused association
OnRefused = Callable[[str, str, str, dict[str, object]], Coroutine[Any, Any, None]]


class ScpConfigError(DicomError):
    """The SCP configuration is unusable (empty allow-list, bad AE title)."""

    reason = "scp_config"


def _valid_ae_title(title: str) -> bool:
    return 0 < len(title.strip()) <= 16 and title.isascii() and title.isprintable() and "\\" not in title


def parse_networks(title: str, addresses: Sequence[str]) -> tuple[Network, ...]:
    """The networks an AE title may call from (``"10.1.2.3"``, ``"10.1.9.0/24"``, ``"::1"``)."""
    if isinstance(addresses, str) or not addresses:
        raise ScpConfigError(f"allowed_calling_aets.{title}: list the addresses this AE sends from, "
                             f'e.g. {title} = ["10.1.2.3"]')
    nets: list[Network] = []
    for a in addresses:
        try:
            nets.append(ipaddress.ip_network(str(a).strip(), strict=False))
        except ValueError as exc:
            raise ScpConfigError(f"allowed_calling_aets.{title}: {a!r} is not an IP address or network "
                                 f'(write "10.1.2.3" or "10.1.9.0/24")') from exc
    return tuple(nets)


def address_allowed(address: str, networks: Sequence[Network]) -> bool:
    """Whether the peer ``address`` lies in one of ``networks`` (IPv4-mapped IPv6 counts as IPv4)."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in networks)


class StoreScp:
    """A C-STORE SCP in background threads with :meth:`start` / :meth:`stop`."""

    def __init__(
        self,
        store: ObjectStore,
        on_indexed: OnIndexed | None,
        allowed_calling_aets: Mapping[str, Sequence[str]],
        *,
        ae_title: str = DEFAULT_AE_TITLE,
        host: str = "0.0.0.0",
        port: int = DEFAULT_PORT,
        national_id_issuers: frozenset[str] = NATIONAL_ID_ISSUERS,
        callback_timeout: float = 60.0,
        on_refused: OnRefused | None = None,
    ) -> None:
        if not allowed_calling_aets or not isinstance(allowed_calling_aets, Mapping):
            raise ScpConfigError("dicom.allowed_calling_aets is empty: list the PACS AE titles allowed to send, "
                                 'each with its addresses: allowed_calling_aets = { PACS1 = ["10.1.2.3"] }')
        bad = [t for t in [ae_title, *allowed_calling_aets] if not _valid_ae_title(t)]
        if bad:
            raise ScpConfigError(f"AE titles must be 1-16 printable ASCII characters without '\\': {bad}")
        self.intake = Intake(store, on_indexed, national_id_issuers)
        self.networks = {t.strip(): parse_networks(t, a) for t, a in allowed_calling_aets.items()}
        self.allowed = list(self.networks)
        self.on_refused = on_refused
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
                (self.host, self.port), block=False,
                evt_handlers=[(evt.EVT_REQUESTED, self._on_requested), (evt.EVT_C_STORE, self._on_store)],
            )
        except OSError as exc:
            raise ScpConfigError(f"cannot listen on {self.host}:{self.port} for DICOM: {exc.strerror}") from exc
        port: int = self._server.server_address[1]
        log.info("DICOM C-STORE SCP %s listening on %s:%d, calling AEs allowed: %s", self.ae_title, self.host, port,
                 ", ".join(f"{t} from {'/'.join(str(n) for n in nets)}" for t, nets in self.networks.items()))
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

    def allows(self, calling_aet: str, address: str) -> bool:
        """Whether ``calling_aet`` may associate from ``address``."""
        nets = self.networks.get(calling_aet.strip())
        return nets is not None and address_allowed(address, nets)

    def _on_requested(self, event: Any) -> None:
        """EVT_REQUESTED (association thread, before negotiation): reject a stranger at once."""
        assoc = event.assoc
        calling = str(assoc.requestor.primitive.calling_ae_title).strip()
        called = str(assoc.requestor.primitive.called_ae_title).strip()
        address = str(assoc.requestor.address)
        if not self.allows(calling, address):
            known = calling in self.networks
            reason, diagnostic = ("address_not_allowed" if known else "unknown_calling_aet"), 0x03
        elif called != self.ae_title:
            reason, diagnostic = "wrong_called_aet", 0x07
        else:
            return
        # rejected-permanent, service user, calling (0x03) / called (0x07) AE title not recognised
        assoc.acse.send_reject(0x01, 0x01, diagnostic)
        assoc.kill()  # as pynetdicom's own rejection does: lets the DUL send the A-ASSOCIATE-RJ, then stops it
        log.warning("DICOM association from %s (calling AE %r) refused: %s", address, calling[:16], reason)
        if self.on_refused is not None and self._loop is not None and not self._loop.is_closed():
            detail: dict[str, object] = {"calling_aet": calling[:16], "called_aet": called[:16]}
            asyncio.run_coroutine_threadsafe(self.on_refused("dicom-scp", reason, address, detail), self._loop)

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
