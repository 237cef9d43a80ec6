"""Outbound vitals: a closed station session -> ORU^R01 v2.5.1 -> the HIS over MLLP.

Ingest enqueues ``visit.closed`` inside the ingest transaction; while ``[his] enabled`` the
outbox trigger of migration 4 adds ``his.vitals`` (key ``his.vitals/{hub}/{session}``) in
that same transaction. The dispatcher (:func:`cloud.outbox.run_dispatcher`, topic
``his.vitals``) calls :meth:`VitalsSender.deliver` for each message:

1. load the session, its (surviving) subject — national ID and name opened from their
   sealed columns, the MRN learned from ADT — and its readings;
2. build the ORU^R01 (:func:`protocol.hl7.oru.build_vitals_oru`): MSH-10 is ``MCHV`` + the
   outbox id and MSH-7 the session's close time, so every resend and every replay is the
   same bytes with the same control id and the HIS drops the copies;
3. send over one persistent MLLP connection and wait for the ACK
   (:class:`cloud.mllp.client.MllpSender`: no ACK -> resend the same bytes).

AA/CA -> done. AE/AR (CE/CR) -> dead letter at once with the HIS's reason. No ACK or no
connection -> retried with backoff by the outbox, dead after ``[outbox] max_attempts``.
A session that cannot be reported (no MRN and no national ID) is dead-lettered with that
reason; a session without observations is completed without sending anything.
"""

from __future__ import annotations

import datetime as dt
import logging
import ssl

import msgspec

from cloud.config import HisConfig
from cloud.db.engine import Database, Tx
from cloud.errors import DatabaseError
from cloud.integration.matching import survivor
from cloud.mllp.client import MllpSender
from cloud.mllp.errors import NegativeAck, SendError
from cloud.outbox import DeliveryError, Message
from cloud.records.crypto_at_rest import AtRest
from protocol.clinical.patient import CHINA, Patient
from protocol.errors import ClinicalError
from protocol.hl7.errors import BuildError
from protocol.hl7.oru import VitalsReport, build_vitals_oru, reference_ranges_for
from protocol.model import SIMULATED, Observation, Reading, Subject

log = logging.getLogger("mchub.cloud.integration.vitals")
TOPIC = "his.vitals"
_OBS = msgspec.json.Decoder(list[Observation])


def control_id(message_id: int) -> str:
    """MSH-10 of outbox message ``message_id`` (stable across resends and replays)."""
    return f"MCHV{message_id:012d}"


async def _subject(tx: Tx, at_rest: AtRest, subject_id: int, authority: str) -> Subject:
    sid = await survivor(tx, subject_id)
    s = await tx.fetchrow("SELECT national_id_enc, name_enc, sex, birth_date, mrn FROM subjects WHERE id = $1", sid)
    members = [sid, *[int(r["id"]) for r in await tx.fetch("SELECT id FROM subjects WHERE merged_into = $1", sid)]]
    mrn = None
    for member in members:
        rows = await tx.fetch("SELECT authority, value FROM subject_identifiers WHERE subject_id = $1 "
                              "ORDER BY created_ms", member)
        exact = [r["value"] for r in rows if not authority or r["authority"] == authority]
        if exact:
            mrn = exact[0]
            break
    nid = at_rest.open(bytes(s["national_id_enc"]), "subjects.national_id") if s["national_id_enc"] else None
    name = at_rest.open(bytes(s["name_enc"]), "subjects.name") if s["name_enc"] else ""
    return Subject(national_id=nid, name=name, sex=s["sex"] or "0", birth_date=s["birth_date"],
                   mrn=mrn or s["mrn"])


async def build_report(db: Database, at_rest: AtRest, message: Message, his: HisConfig,
                       include_simulated: bool = False) -> VitalsReport | None:
    """The report of the session named by an outbox message; None when the session has no readings.

    Readings flagged simulated (protocol.model.SIMULATED) are left out unless ``include_simulated``
    (``[fleet] training_rig = true``): invented values never reach a real HIS.
    """
    hub_id, session_id = str(message.payload["hub_id"]), str(message.payload["session_id"])
    async with db.transaction() as tx:
        session = await tx.fetchrow("SELECT subject_id, opened_ms, closed_ms, pregnant_weeks FROM sessions "
                                    "WHERE hub_id = $1 AND session_id = $2", hub_id, session_id)
        if session is None:
            raise DeliveryError(f"session {hub_id}/{session_id} is not in the database", permanent=True)
        rows = await tx.fetch("SELECT seq, at_ms, device_id, station_id, kind, observations FROM readings "
                              "WHERE hub_id = $1 AND session_id = $2 AND ($3 OR status NOT LIKE $4) "
                              "ORDER BY at_ms, seq", hub_id, session_id, include_simulated, f'%"{SIMULATED}"%')
        readings = tuple(Reading(hub_id=hub_id, seq=r["seq"], at=r["at_ms"], device_id=r["device_id"],
                                 station_id=r["station_id"], kind=r["kind"], session_id=session_id,
                                 observations=tuple(_OBS.decode(r["observations"])))
                         for r in rows if r["kind"] != "cuff_pressure")
        if not readings:
            return None
        if session["subject_id"] is None:
            subject = Subject()
        else:
            subject = await _subject(tx, at_rest, int(session["subject_id"]), his.mrn_authority)
    try:
        patient = Patient.from_subject(subject.national_id, subject.birth_date, subject.sex, session["pregnant_weeks"])
    except ClinicalError:  # implausible weeks: judged without them (the record keeps what the hub sent)
        patient = Patient.from_subject(subject.national_id, subject.birth_date, subject.sex)
    day = dt.datetime.fromtimestamp(session["opened_ms"] / 1000, CHINA).date()
    return VitalsReport(control_id=control_id(message.id), session_id=session_id, subject=subject,
                        readings=readings, created_at=session["closed_ms"] or session["opened_ms"],
                        sending_facility=his.sending_facility, receiving_app=his.receiving_app,
                        receiving_facility=his.receiving_facility, mrn_authority=his.mrn_authority,
                        reference_ranges=reference_ranges_for(patient, (o for r in readings for o in r.observations),
                                                              day))


class VitalsSender:
    """The delivery function of the ``his.vitals`` dispatcher, with one persistent MLLP connection."""

    def __init__(self, db: Database, at_rest: AtRest, his: HisConfig, include_simulated: bool = False) -> None:
        self.db = db
        self.include_simulated = include_simulated  #: [fleet] training_rig
        self.at_rest = at_rest
        self.his = his
        context = ssl.create_default_context(cafile=str(his.tls_ca)) if his.tls_ca is not None else None
        self.sender = MllpSender(his.host, his.port, ssl_context=context, ack_timeout=his.ack_timeout_s,
                                 connect_timeout=min(10.0, his.ack_timeout_s), attempts=his.attempts,
                                 retry_delay=1.0)
        self.sent = 0

    @property
    def lease_ms(self) -> int:
        """Longest one delivery can take (every attempt times out), with a margin: the outbox lease."""
        per_attempt = self.sender.connect_timeout + self.sender.ack_timeout + self.sender.retry_delay
        return int(per_attempt * self.sender.attempts * 1500) + 5000

    async def deliver(self, message: Message) -> None:
        """Send one session's ORU^R01; raises DeliveryError (permanent for AE/AR and unbuildable sessions)."""
        try:
            report = await build_report(self.db, self.at_rest, message, self.his, self.include_simulated)
        except DatabaseError as exc:
            raise DeliveryError(f"database: {exc}") from exc
        if report is None:
            log.info("his.vitals %d: session has no readings, nothing to send", message.id)
            return
        try:
            payload = build_vitals_oru(report)
        except BuildError as exc:
            raise DeliveryError(f"cannot build the ORU^R01: {exc}", permanent=True) from exc
        try:
            ack = await self.sender.send(payload)
        except NegativeAck as exc:
            raise DeliveryError(exc.reason, permanent=True) from exc  # "AE: the HIS's text"
        except SendError as exc:
            raise DeliveryError(str(exc)) from exc
        self.sent += 1
        log.info("his.vitals %d sent as %s, HIS answered %s", message.id, report.control_id, ack.code)

    async def close(self) -> None:
        """Close the MLLP connection."""
        await self.sender.close()
