"""The message browser's queries: HL7 in and out, MCH uploads and DICOM, searched, opened, sent again.

Four sources, one row shape (:class:`Row`), newest first, paged by a cursor (keyset, never
OFFSET: a page costs the same on row 200,000 as on row 1):

* ``hl7_in``  — ``hl7_inbound``: every MLLP frame, the ACK it was answered with (migration 16),
  whether processing used it; state ``processed``/``waiting``/``failed`` for accepted messages,
  else the listener's ``error``/``rejected``/``garbage``/``oversized``;
* ``hl7_out`` — outbox topic ``his.vitals`` (control id ``MCHV<id>``), ``mch`` — topic
  ``mch.upload``: state ``pending``/``done``/``dead`` with the receiver's reason;
* ``dicom``   — ``dicom_instances``: state ``matched`` or ``unmatched`` (waiting for its patient).

Patient filters use only keyed HMACs: an ID number its blind index, a name its name index
(:class:`~cloud.records.crypto_at_rest.AtRest`); nothing here returns an ID number or a name in the
clear. Message bodies are sealed at rest, so a content search opens the candidates that pass
the other filters, at most :data:`CONTENT_SCAN` per page, and says where it stopped.

    page = await search(db, at_rest, Filters(source="hl7_in", state="failed"))
    one = await hl7_detail(db, at_rest, page.rows[0].ref, actor="web:alice")     # audited
    done = await send_again(db, "hl7_in", [r.ref for r in page.rows], actor="web:alice", rules=Rules())
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import msgspec

from cloud import audit, outbox
from cloud.config.integration import MllpConfig
from cloud.db.engine import Database, Tx
from cloud.errors import CloudError
from cloud.integration.vitals import TOPIC as VITALS_TOPIC
from cloud.integration.vitals import control_id as vitals_control_id
from cloud.integration.worklist import ResultLine, result_lines
from cloud.mch.store import UPLOAD_TOPIC
from cloud.mllp.db_store import ACK_COLUMN, COLUMN
from cloud.mllp.server import app_allowed
from cloud.mllp.store import InboundMeta
from cloud.records.crypto_at_rest import AtRest
from protocol import idnum
from protocol.hl7.errors import Hl7Error, SenderRefused
from protocol.hl7.fields import Tree, field_tree, segment_lines
from protocol.hl7.message import INBOUND, check

SOURCES = ("hl7_in", "hl7_out", "mch", "dicom")
STATES: dict[str, tuple[str, ...]] = {
    "hl7_in": ("processed", "waiting", "failed", "error", "rejected", "garbage", "oversized"),
    "hl7_out": ("pending", "done", "dead"), "mch": ("pending", "done", "dead"), "dicom": ("matched", "unmatched"),
}
TOPICS = {"hl7_out": VITALS_TOPIC, "mch": UPLOAD_TOPIC}
PAGE = 50  #: rows per page
CONTENT_SCAN = 2_000  #: sealed messages opened per page by a content search
_HL7_STATE_SQL = {
    "processed": "status = 'accepted' AND processed_ms IS NOT NULL AND process_error IS NULL",
    "waiting": "status = 'accepted' AND processed_ms IS NULL",
    "failed": "process_error IS NOT NULL",
}


class BrowserError(CloudError):
    """A message that cannot be shown or sent again (the text says why)."""


@dataclass(frozen=True)
class Filters:
    """What the integration engineer asked for; empty fields do not filter."""

    source: str = "hl7_in"
    control_id: str = ""  #: MSH-10, outbox key or MCHV control id, accession / study / SOP UID
    national_id: str = ""  #: matched by blind index (posted, never in a URL)
    name: str = ""  #: full name, matched by name index
    date_from: dt.date | None = None  #: local dates, both inclusive
    date_to: dt.date | None = None
    state: str = ""
    content: str = ""  #: text anywhere in the message (or its reason)
    cursor: str = ""  #: from :attr:`Page.cursor` of the page before

    @property
    def patient(self) -> bool:
        """The search names a person (the caller audits it as a view of patient data)."""
        return bool(self.national_id.strip() or self.name.strip())


@dataclass(frozen=True)
class Row:
    """One message as the list shows it."""

    source: str
    ref: str  #: what opens it: hl7_inbound uid, outbox id, SOP Instance UID
    at_ms: int
    control_id: str
    message_type: str
    peer: str  #: sender (HL7 in), receiver topic (out), modality (DICOM)
    state: str
    reason: str  #: why it was refused or failed ('' when fine)
    ack_code: str = ""


@dataclass
class Page:
    """One page of rows; ``cursor`` opens the next ('' when this was the last)."""

    rows: list[Row]
    cursor: str = ""
    scanned: int = 0  #: sealed messages opened by a content search for this page
    not_applicable: list[str] = field(default_factory=list)  #: filters this source cannot use


@dataclass(frozen=True)
class Rules:
    """The listener's rules a refused message is checked against again (cloud.toml ``[mllp]``)."""

    supported: dict[str, frozenset[str]] = field(default_factory=lambda: dict(INBOUND))
    allowed_apps: frozenset[str] = frozenset()

    @classmethod
    def of(cls, mllp: MllpConfig) -> Rules:
        """The rules the listener applies with this ``[mllp]`` section (cloud.integration.service)."""
        return cls(allowed_apps=frozenset(mllp.allowed_apps))


def _ms(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time()).timestamp() * 1000)


def _range(f: Filters) -> tuple[int, int]:
    lo = _ms(f.date_from) if f.date_from else 0
    hi = _ms(f.date_to + dt.timedelta(days=1)) if f.date_to else 1 << 62  # the end date is included
    return lo, hi


class _Where:
    """Conditions with numbered parameters."""

    def __init__(self) -> None:
        self.terms: list[str] = []
        self.args: list[Any] = []

    def add(self, sql: str, *args: Any) -> None:
        for a in args:
            self.args.append(a)
            sql = sql.replace("?", f"${len(self.args)}", 1)
        self.terms.append(sql)

    @property
    def sql(self) -> str:
        return " AND ".join(self.terms) or "TRUE"


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _national_index(at_rest: AtRest, number: str) -> str:
    if not idnum.is_valid(number):
        raise BrowserError("not a valid ID number (18 characters, check digit per GB 11643)")
    return at_rest.blind_index(number)


async def search(db: Database, at_rest: AtRest, f: Filters) -> Page:
    """One page of messages of ``f.source`` matching every given filter, newest first."""
    if f.source not in SOURCES:
        raise BrowserError(f"unknown source {f.source!r}")
    if f.state and f.state not in STATES[f.source]:
        raise BrowserError(f"unknown state {f.state!r}")
    async with db.transaction() as tx:
        if f.source == "hl7_in":
            return await _hl7_in(tx, at_rest, f)
        if f.source == "dicom":
            return await _dicom(tx, at_rest, f)
        return await _outbox(tx, f)


def _hl7_state(status: str, processed_ms: int | None, error: str | None) -> str:
    if status != "accepted":
        return status
    return "failed" if error else ("waiting" if processed_ms is None else "processed")


async def _hl7_in(tx: Tx, at_rest: AtRest, f: Filters) -> Page:
    w = _Where()
    lo, hi = _range(f)
    if f.date_from or f.date_to:
        w.add("received_ms >= ? AND received_ms < ?", lo, hi)
    if f.control_id.strip():
        w.add("control_id = ?", f.control_id.strip())
    if f.national_id.strip():
        w.add("patient_index = ?", _national_index(at_rest, f.national_id))
    if f.name.strip():
        w.add("name_index = ?", at_rest.name_index(f.name))
    if f.state:
        w.add(_HL7_STATE_SQL.get(f.state, "status = ?"), *(() if f.state in _HL7_STATE_SQL else (f.state,)))
    if f.cursor.isdigit():
        w.add("id < ?", int(f.cursor))
    text = f.content.strip()
    limit = CONTENT_SCAN if text else PAGE + 1  # a content search opens up to CONTENT_SCAN candidates
    rows = await tx.fetch(
        "SELECT id, uid, received_ms, peer, sender, control_id, message_type, status, ack_code, reason, "  # noqa: S608 - constant fragments; values are parameters
        "processed_ms, process_error" + (", raw, sealed" if text else "") +
        f" FROM hl7_inbound WHERE {w.sql} ORDER BY id DESC LIMIT {limit:d}", *w.args)
    found: list[Row] = []
    ids: list[int] = []
    for r in rows:
        if text and not _contains(at_rest, r, text):
            continue
        found.append(Row("hl7_in", r["uid"], r["received_ms"], r["control_id"], r["message_type"],
                         r["sender"] or r["peer"], _hl7_state(r["status"], r["processed_ms"], r["process_error"]),
                         r["process_error"] or r["reason"], r["ack_code"]))
        ids.append(r["id"])
        if len(found) > PAGE:
            break
    if len(found) > PAGE:  # one more than a page: the next page starts after the last one shown
        return Page(found[:PAGE], str(ids[PAGE - 1]), len(ids) if text else 0)
    if text and len(rows) == limit:  # the scan stopped before the end: the next page goes on from there
        return Page(found, str(rows[-1]["id"]), len(rows))
    return Page(found, "", len(rows) if text else 0)


def _contains(at_rest: AtRest, r: Any, text: str) -> bool:
    if text in (r["reason"] or "") or text in (r["process_error"] or "") or text in r["control_id"]:
        return True
    raw = at_rest.open_bytes(bytes(r["raw"]), COLUMN) if r["sealed"] else bytes(r["raw"])
    return any(text.encode(codec, errors="ignore") in raw for codec in ("utf-8", "gb18030"))


def _paged(found: list[Row], cursor_of: Any) -> Page:
    if len(found) > PAGE:
        found = found[:PAGE]
        return Page(found, cursor_of(found[-1]))
    return Page(found)


async def _outbox(tx: Tx, f: Filters) -> Page:
    w = _Where()
    w.add("topic = ?", TOPICS[f.source])
    lo, hi = _range(f)
    if f.date_from or f.date_to:
        w.add("created_ms >= ? AND created_ms < ?", lo, hi)
    cid = f.control_id.strip()
    if cid:
        number = cid.removeprefix("MCHV")
        w.add("(id = ? OR idempotency_key = ?)", int(number) if number.isdigit() and len(number) < 19 else -1, cid)
    if f.state:
        w.add("status = ?", f.state)
    if f.content.strip():
        w.add("(payload LIKE ? ESCAPE '\\' OR last_error LIKE ? ESCAPE '\\')", _like(f.content.strip()),
              _like(f.content.strip()))
    if f.cursor.isdigit():
        w.add("id < ?", int(f.cursor))
    rows = await tx.fetch(
        "SELECT id, topic, idempotency_key, status, attempts, created_ms, last_error FROM outbox "  # noqa: S608 - constant fragments; values are parameters
        f"WHERE {w.sql} ORDER BY id DESC LIMIT {PAGE + 1:d}", *w.args)
    found = [Row(f.source, str(r["id"]), r["created_ms"],
                 vitals_control_id(r["id"]) if f.source == "hl7_out" else r["idempotency_key"],
                 r["topic"], r["idempotency_key"] if f.source == "hl7_out" else "", r["status"],
                 r["last_error"] or "") for r in rows]
    page = _paged(found, lambda row: row.ref)
    page.not_applicable = ["national_id", "name"] if f.patient else []
    return page


async def _dicom(tx: Tx, at_rest: AtRest, f: Filters) -> Page:
    w = _Where()
    lo, hi = _range(f)
    if f.date_from or f.date_to:
        w.add("received_ms >= ? AND received_ms < ?", lo, hi)
    cid = f.control_id.strip()
    if cid:
        w.add("(accession = ? OR study_uid = ? OR sop_instance_uid = ?)", cid, cid, cid)
    if f.national_id.strip():
        w.add("subject_id IN (SELECT id FROM subjects WHERE blind_index = ? UNION "
              "SELECT m.id FROM subjects m JOIN subjects s ON m.merged_into = s.id WHERE s.blind_index = ?)",
              *([_national_index(at_rest, f.national_id)] * 2))
    if f.state:
        w.add("subject_id IS NOT NULL" if f.state == "matched" else "subject_id IS NULL")
    if f.content.strip():
        w.add("(modality LIKE ? ESCAPE '\\' OR family LIKE ? ESCAPE '\\' OR birads LIKE ? ESCAPE '\\')",
              *([_like(f.content.strip())] * 3))
    if ":" in f.cursor:
        at, sop = f.cursor.split(":", 1)
        if at.isdigit():
            w.add("(received_ms < ? OR (received_ms = ? AND sop_instance_uid < ?))", int(at), int(at), sop)
    rows = await tx.fetch(
        "SELECT sop_instance_uid, study_uid, accession, family, modality, subject_id, received_ms "  # noqa: S608 - constant fragments; values are parameters
        f"FROM dicom_instances WHERE {w.sql} ORDER BY received_ms DESC, sop_instance_uid DESC LIMIT {PAGE + 1:d}",
        *w.args)
    found = [Row("dicom", r["sop_instance_uid"], r["received_ms"], r["accession"] or r["study_uid"], r["family"],
                 r["modality"], "matched" if r["subject_id"] is not None else "unmatched", "") for r in rows]
    page = _paged(found, lambda row: f"{row.at_ms}:{row.ref}")
    page.not_applicable = ["name"] if f.name.strip() else []
    return page


# -- one message --------------------------------------------------------------------------------------


@dataclass
class Hl7Detail:
    """Everything the detail view shows of one inbound message."""

    row: Row
    duplicates: int
    raw_lines: list[str]
    tree: Tree | None  #: None when the bytes are not segments
    ack_lines: list[str]  #: the answer sent back ([] when none was due or it predates migration 16)
    ack_tree: Tree | None
    patient: dict[str, Any] | None  #: masked ID number and name, sex, birth year, subject id
    results: list[ResultLine]  #: as people read them (names from protocol.labresults)
    unmatched: dict[str, Any] | None  #: its work-list item, when its patient was not known


async def hl7_detail(db: Database, at_rest: AtRest, uid: str, *, actor: str) -> Hl7Detail:
    """Open one inbound message (it holds patient data: the read is audited as ``hl7.view``)."""
    async with db.transaction() as tx:
        r = await tx.fetchrow("SELECT uid, received_ms, peer, sender, control_id, message_type, status, ack_code, "
                              "reason, processed_ms, process_error, duplicates, raw, sealed, ack "
                              "FROM hl7_inbound WHERE uid = $1", uid)
        if r is None:
            raise BrowserError(f"no HL7 message {uid}")
        rows = await tx.fetch("SELECT subject_id, kind, code, value, unit, observed_ms, payload FROM results "
                              "WHERE origin = $1 ORDER BY id", f"hl7:{uid}")
        item = await tx.fetchrow("SELECT id, status, mrn, summary FROM unmatched WHERE kind = 'hl7' AND ref = $1",
                                 uid)
        subject = next((x["subject_id"] for x in rows if x["subject_id"] is not None), None)
        patient = await _patient(tx, at_rest, subject) if subject is not None else None
        await audit.write(tx, actor=actor, action="hl7.view", outcome="ok", subject_id=subject, detail={"uid": uid})
    sealed = bool(r["sealed"])
    raw = at_rest.open_bytes(bytes(r["raw"]), COLUMN) if sealed else bytes(r["raw"])
    ack = b""
    if r["ack"] is not None:
        ack = at_rest.open_bytes(bytes(r["ack"]), ACK_COLUMN) if sealed else bytes(r["ack"])
    row = Row("hl7_in", r["uid"], r["received_ms"], r["control_id"], r["message_type"], r["sender"] or r["peer"],
              _hl7_state(r["status"], r["processed_ms"], r["process_error"]), r["process_error"] or r["reason"],
              r["ack_code"])
    return Hl7Detail(row, r["duplicates"], segment_lines(raw), _tree(raw), segment_lines(ack) if ack else [],
                     _tree(ack) if ack else None, patient, result_lines(rows), dict(item) if item else None)


def _tree(raw: bytes) -> Tree | None:
    try:
        return field_tree(raw)
    except Hl7Error:
        return None


async def _patient(tx: Tx, at_rest: AtRest, subject_id: int) -> dict[str, Any] | None:
    s = await tx.fetchrow("SELECT id, national_id_enc, name_enc, sex, birth_date FROM subjects WHERE id = $1",
                          subject_id)
    if s is None:
        return None
    number = at_rest.open(bytes(s["national_id_enc"]), "subjects.national_id") if s["national_id_enc"] else ""
    name = at_rest.open(bytes(s["name_enc"]), "subjects.name") if s["name_enc"] else ""
    return {"id": s["id"], "masked": idnum.mask(number) if number else "", "name": idnum.mask_name(name),
            "sex": s["sex"], "birth_year": (s["birth_date"] or "")[:4]}


async def outbox_detail(db: Database, message_id: int) -> dict[str, Any]:
    """One outbound message (HIS vitals or MCH upload): its row and payload (keys and ids, no patient data)."""
    async with db.transaction() as tx:
        r = await tx.fetchrow("SELECT id, topic, idempotency_key, payload, status, attempts, next_attempt_ms, "
                              "last_error, created_ms, updated_ms FROM outbox WHERE id = $1 AND topic IN ($2, $3)",
                              message_id, VITALS_TOPIC, UPLOAD_TOPIC)
    if r is None:
        raise BrowserError(f"no outbound message {message_id}")
    d = dict(r)
    d["payload"] = msgspec.json.format(r["payload"].encode(), indent=2).decode()
    d["control_id"] = vitals_control_id(r["id"]) if r["topic"] == VITALS_TOPIC else r["idempotency_key"]
    return d


# -- send again ---------------------------------------------------------------------------------------


async def send_again(db: Database, at_rest: AtRest, source: str, refs: list[str], *, actor: str,
                     rules: Rules) -> dict[str, str]:
    """Reprocess (HL7 in) or replay (HL7 out, MCH) each message; returns ref -> outcome.

    Outcome ``ok``, else the reason it was left as it was. Each is its own audited transaction.
    DICOM instances are matched on the unmatched work list, not sent again.
    """
    out: dict[str, str] = {}
    for ref in dict.fromkeys(refs):
        try:
            if source == "hl7_in":
                await reprocess(db, at_rest, ref, actor=actor, rules=rules)
            elif source in TOPICS and ref.isdigit():
                await outbox.replay(db, int(ref), actor=actor)
            else:
                raise BrowserError(f"{source} {ref} cannot be sent again")
            out[ref] = "ok"
        except CloudError as exc:
            out[ref] = str(exc)
    return out


async def reprocess(db: Database, at_rest: AtRest, uid: str, *, actor: str, rules: Rules) -> None:
    """Process an inbound message again (audited ``hl7.reprocess``).

    An accepted one is queued for the processor again: its results are keyed by message and
    position, so one that already produced them does not produce them twice. A refused one
    (``error``/``rejected``/``garbage``) is checked again with today's ``rules`` — after its
    cause was fixed (code, configuration) it is accepted and processed; its sender still got
    the answer shown. If the sender has meanwhile resent it and that copy was accepted, this
    one stays refused (the copy holds the results).
    """
    async with db.transaction() as tx:
        r = await tx.fetchrow("SELECT status, raw, sealed, peer, received_ms FROM hl7_inbound WHERE uid = $1", uid)
        if r is None:
            raise BrowserError(f"no HL7 message {uid}")
        before = r["status"]
        if before == "accepted":
            await tx.execute("UPDATE hl7_inbound SET processed_ms = NULL, process_error = NULL WHERE uid = $1", uid)
        elif before == "oversized":
            raise BrowserError("only the first part of an oversized message was kept; ask the sender to resend it")
        else:
            raw = at_rest.open_bytes(bytes(r["raw"]), COLUMN) if r["sealed"] else bytes(r["raw"])
            try:
                header = check(raw, rules.supported)
                if rules.allowed_apps and not app_allowed(header, rules.allowed_apps):
                    raise SenderRefused(f"sending application {header.sender!r} is still not allowed")
            except Hl7Error as exc:
                raise BrowserError(f"still refused: {exc.reason}: {exc}") from exc
            meta = InboundMeta(received_at=r["received_ms"], peer=r["peer"], status="accepted",
                               sender=header.sender, control_id=header.control_id)
            key = meta.dedup_key(raw)
            copy = await tx.fetchval("SELECT uid FROM hl7_inbound WHERE dedup_key = $1", key)
            if copy is not None:
                raise BrowserError(f"the sender has sent it again and that copy was accepted: {copy}")
            await tx.execute("UPDATE hl7_inbound SET status = 'accepted', reason = '', dedup_key = $1, "
                             "control_key = $2, sender = $3, control_id = $4, message_type = $5, processed_ms = NULL, "
                             "process_error = NULL WHERE uid = $6", key, meta.control_key, header.sender,
                             header.control_id, f"{header.message_type}^{header.trigger_event}", uid)
        await audit.write(tx, actor=actor, action="hl7.reprocess", outcome="ok", detail={"uid": uid, "was": before})
