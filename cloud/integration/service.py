"""Start and stop the hospital integration inside a cloud process.

Two roles, because a TCP port can be owned by one process only:

* every HTTP worker serves STOW-RS (``POST /dicomweb/studies``) and the integration API
  (``/integration/v1``) — both stateless, any worker can answer;
* exactly ONE process is the **owner**: it binds the MLLP listener (``[mllp]``) and the
  DICOM C-STORE SCP (``[dicom]``), processes stored HL7 messages into the cloud tables (on
  PostgreSQL in a child process of its own: :mod:`cloud.integration.hl7_process`) and
  runs the ``his.vitals`` dispatcher (``[his]``). With ``[server] workers = 1`` that is the
  worker itself; with more, ``mchub cloud serve`` starts ``mchub cloud integrate`` as one
  extra process next to the uvicorn workers (``cloud/server/serve.py``), and
  ``mchub cloud serve --no-integrate`` leaves it to an ``integrate`` process run elsewhere.
  The outbox claims with ``FOR UPDATE SKIP LOCKED``, so even two owners by mistake would
  not send a message twice at once — but the second could not bind the ports.

Which role a worker has comes from ``MCHUB_CLOUD_INTEGRATION`` (``worker`` = owner, the
default for a single in-process app; ``external`` = HTTP only), set by ``serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from collections.abc import Awaitable, Callable

import msgspec
from starlette.routing import BaseRoute

from cloud import outbox
from cloud.config import CloudConfig, mllp_networks
from cloud.db.engine import Database
from cloud.intake.keystore import CloudKeys
from cloud.integration import api
from cloud.integration.dicom_link import DicomLink
from cloud.integration.dicom_senders import DicomRefusals, SenderAuth
from cloud.integration.hl7_process import ProcessorChild
from cloud.integration.inbound import Hl7Processor
from cloud.integration.vitals import TOPIC, VitalsSender
from cloud.mllp.db_store import Hl7Store
from cloud.mllp.refusals import Refusals, audit_sink
from cloud.mllp.server import ListenerConfig, MllpListener
from cloud.records.crypto_at_rest import AtRest
from protocol.hl7.codemap import CodeMap

log = logging.getLogger("mchub.cloud.integration")
ROLE_ENV = "MCHUB_CLOUD_INTEGRATION"


async def set_switch(db: Database, name: str, enabled: bool) -> None:
    """Turn an outbox fan-out of migration 4 on or off (``his.vitals``)."""
    async with db.transaction() as tx:
        await tx.execute("UPDATE integration_switches SET enabled = $1 WHERE name = $2", enabled, name)


async def _supervise(name: str, run: Callable[[], Awaitable[None]], stop: asyncio.Event) -> None:
    """Run a loop until ``stop``; an unexpected error is logged and the loop restarted after 5 s."""
    while not stop.is_set():
        try:
            await run()
        except Exception:
            log.exception("%s stopped unexpectedly; restarting in 5 s", name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5)


class Integration:
    """The integration parts of one process; ``owner`` decides whether it binds the ports."""

    def __init__(self, cfg: CloudConfig, *, owner: bool | None = None) -> None:
        self.cfg = cfg
        self.owner = os.environ.get(ROLE_ENV, "worker") == "worker" if owner is None else owner
        self.link = DicomLink()
        self.dicom_refusals = DicomRefusals()
        self.dicom_auth = SenderAuth(self.dicom_refusals)
        self.dicom = None
        if cfg.dicom.enabled:
            from cloud.dicom.service import DicomService  # pydicom only when DICOM is on

            dicom_cfg = cfg.dicom  # checked by cloud.config.load
            if not self.owner:
                dicom_cfg = msgspec.structs.replace(dicom_cfg, scp_enabled=False)
            self.dicom = DicomService(dicom_cfg, self.link, authorise=self.dicom_auth,
                                      on_refused=self.dicom_refusals)
        self.listener: MllpListener | None = None
        self.store: Hl7Store | None = None
        self.processor: Hl7Processor | None = None  #: SQLite; on PostgreSQL the processor is ``hl7_child``
        self.hl7_child: ProcessorChild | None = None
        self.vitals: VitalsSender | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def routes(self) -> list[BaseRoute]:
        """STOW-RS (when [dicom] is enabled) and the integration API, for every HTTP worker."""
        return [*(self.dicom.routes() if self.dicom is not None else []), *api.routes()]

    async def start(self, db: Database, keys: CloudKeys) -> None:
        """Connect the callbacks; the owner also binds the ports and starts the loops."""
        at_rest = AtRest(keys.at_rest, keys.blind_index)
        self.link.bind(db, at_rest)
        self.dicom_refusals.db = db
        self.dicom_auth.bind(db)
        if self.dicom is not None:
            self.dicom.bind_sealer(at_rest)  # DICOM objects at rest under the at-rest key (issue 17 §9)
        if not self.owner:
            return
        cfg = self.cfg
        await set_switch(db, TOPIC, cfg.his.enabled)
        if cfg.mllp.enabled:
            m = cfg.mllp
            context = None
            if m.tls_cert is not None and m.tls_key is not None:
                context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                context.load_cert_chain(m.tls_cert, m.tls_key)
            self.store = Hl7Store(db, at_rest)
            upgraded = await self.store.upgrade_keys()  # rows from before migration 13, once
            if upgraded:
                log.info("HL7 store: %d earlier messages given content-based duplicate keys", upgraded)
            self.listener = MllpListener(self.store, ListenerConfig(
                host=m.host, port=m.port, max_size=m.max_message_bytes, ssl=context, idle_timeout=m.idle_timeout_s,
                frame_timeout=m.frame_timeout_s, allow_any=m.allow_any, allowed=mllp_networks(m),
                allowed_apps=frozenset(m.allowed_apps), max_connections=m.max_connections,
                max_per_source=m.max_connections_per_source, refusals=Refusals(audit_sink(db))))
            await self.listener.start()
            if db.dialect == "postgres":  # its own process: the listener keeps this one's CPU (hl7_process)
                self.hl7_child = child = ProcessorChild(cfg.path)
                self._tasks.append(asyncio.create_task(_supervise("HL7 processor process",
                                                                  lambda: child.run(self._stop), self._stop)))
            else:  # SQLite: one process writes the file
                self.processor = Hl7Processor(db, self.store, at_rest,
                                              CodeMap.from_config(m.code_map, str(cfg.path), "[mllp] code_map"))
                self._tasks.append(asyncio.create_task(
                    _supervise("HL7 processor", lambda: self.processor.run(self._stop), self._stop)))  # type: ignore[union-attr]
        if cfg.his.enabled:
            self.vitals = sender = VitalsSender(db, at_rest, cfg.his, cfg.fleet.training_rig)
            self._tasks.append(asyncio.create_task(_supervise("HIS vitals dispatcher", lambda: outbox.run_dispatcher(
                db, TOPIC, sender.deliver, cfg.outbox, self._stop, batch=1, lease_ms=sender.lease_ms), self._stop)))
            log.info("HIS vitals to %s:%d", cfg.his.host, cfg.his.port)
        if self.dicom is not None:
            await self.dicom.start()

    @property
    def mllp_port(self) -> int | None:
        """The bound MLLP port (tests configure port 0)."""
        return self.listener.port if self.listener is not None else None

    async def stop(self) -> None:
        """Stop the loops, close the ports (messages in flight are either stored or not acknowledged)."""
        self._stop.set()
        if self.listener is not None:
            await self.listener.close()
        if self.store is not None:
            await self.store.close()
        if self.hl7_child is not None:
            await self.hl7_child.close()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.vitals is not None:
            await self.vitals.close()
        if self.dicom is not None:
            await self.dicom.stop()


async def run_owner(cfg: CloudConfig, ready: Callable[[Integration], None] | None = None) -> int:
    """``mchub cloud integrate``: the owner process without HTTP, until SIGTERM/SIGINT."""
    import signal

    from cloud.db.migrations import migrate
    from cloud.intake.keystore import load_keys

    keys = load_keys(cfg.keys_dir)
    db = await Database.connect(cfg.database.url, min(cfg.database.pool_size, 8))
    try:
        await migrate(db)
        hospital = Integration(cfg, owner=True)
        await hospital.start(db, keys)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("integration owner ready (pid %d): MLLP %s, HIS %s, DICOM %s", os.getpid(),
                 hospital.mllp_port or "off", "on" if cfg.his.enabled else "off", "on" if hospital.dicom else "off")
        if ready is not None:
            ready(hospital)
        await stop.wait()
        await hospital.stop()
    finally:
        await db.close()
    return 0
