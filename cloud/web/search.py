"""Dashboard search: one box for a message control id, an outbox key, a batch, a hub, or a patient.

What the text looks like decides where to look (all parameterised SQL):

* a valid national ID number -> the patient (by blind index; name and number masked, sex and
  birth date from the number) and her visits and results (display name, flag, reference
  range) — a view of patient data, audited by the caller;
* ``HUB:SEQ`` or ``HUB/SEQ`` -> the batch/record with that sequence number on that hub:
  whether it was acknowledged, the reading, and the hub's batch events;
* anything else -> hubs and sites with that id, outbox messages by key (exact or prefix),
  id or HIS control id (``MCHV...``), inbound HL7 messages by control id (MSH-10).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from cloud.db.engine import Tx
from cloud.integration import worklist
from cloud.records.crypto_at_rest import AtRest
from cloud.web import hl7
from protocol import idnum

_BATCH = re.compile(r"([A-Za-z0-9._-]{1,64})[:/](\d{1,19})")


@dataclass
class Found:
    """Everything that matched, by kind (empty lists when nothing did)."""

    query: str
    kind: str = "text"  #: text | batch | patient
    hubs: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    hl7_in: list[dict[str, Any]] = field(default_factory=list)
    batch: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    patient: worklist.PersonView | None = None  #: masked; sex and birth date from her ID number
    visits: list[dict[str, Any]] = field(default_factory=list)
    results: list[worklist.ResultLine] = field(default_factory=list)  #: with display name, flag, range

    @property
    def empty(self) -> bool:
        """Nothing matched."""
        return not (self.hubs or self.outbox or self.hl7_in or self.batch or self.events
                    or self.patient)


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def _patient(tx: Tx, at_rest: AtRest, found: Found, number: str) -> None:
    found.kind = "patient"
    row = await tx.fetchrow("SELECT id, merged_into FROM subjects WHERE blind_index = $1", at_rest.blind_index(number))
    if row is None:
        return
    sid = row["merged_into"] or row["id"]
    her = await tx.fetchrow("SELECT id, name_enc, national_id_enc, sex, birth_date FROM subjects WHERE id = $1", sid)
    if her is None:
        return
    found.patient = worklist.person(at_rest, dict(her))
    found.visits = [dict(r) for r in await tx.fetch(
        "SELECT hub_id, session_id, station_id, opened_ms, closed_ms FROM sessions WHERE subject_id IN "
        "(SELECT id FROM subjects WHERE id = $1 OR merged_into = $2) ORDER BY opened_ms DESC LIMIT 50", sid, sid)]
    found.results = worklist.result_lines(await tx.fetch(
        "SELECT code, value, unit, payload, observed_ms FROM results WHERE subject_id = $1 "
        "ORDER BY observed_ms DESC LIMIT 50", sid))


async def _batch(tx: Tx, found: Found, hub_id: str, seq: int) -> None:
    found.kind = "batch"
    for r in await tx.fetch("SELECT epoch, acked_through, last_batch_ms FROM sync_state WHERE hub_id = $1", hub_id):
        reading = await tx.fetchrow("SELECT uid, device_id, station_id, kind, at_ms, received_ms, session_id "
                                    "FROM readings WHERE hub_id = $1 AND epoch = $2 AND seq = $3",
                                    hub_id, r["epoch"], seq)
        found.batch.append({"hub_id": hub_id, "epoch": r["epoch"], "seq": seq, "acked": seq <= r["acked_through"],
                            "acked_through": r["acked_through"], "reading": dict(reading) if reading else None})
    found.events = [dict(r) for r in await tx.fetch(
        "SELECT at_ms, actor, action, outcome, reason, detail FROM audit_log WHERE hub_id = $1 AND action LIKE $2 "
        "ORDER BY id DESC LIMIT 20", hub_id, "batch.%")]


async def search(tx: Tx, at_rest: AtRest, query: str) -> Found:
    """Look ``query`` up everywhere it could mean something."""
    q = query.strip()[:128]
    found = Found(q)
    if not q:
        return found
    if idnum.is_valid(q):
        await _patient(tx, at_rest, found, q)
        return found
    if m := _BATCH.fullmatch(q):
        await _batch(tx, found, m.group(1), int(m.group(2)))
        return found
    found.hubs = [dict(r) for r in await tx.fetch(
        "SELECT hub_id, site_id, status, online, last_seen_ms, queue_depth FROM hubs "
        "WHERE hub_id = $1 OR site_id = $2 ORDER BY hub_id LIMIT 50", q, q)]
    msg_id = int(q) if q.isdigit() and len(q) < 19 else hl7.vitals_message_id(q) or -1
    found.outbox = [dict(r) for r in await tx.fetch(
        "SELECT id, topic, idempotency_key, status, attempts, created_ms, updated_ms, last_error FROM outbox "
        "WHERE id = $1 OR idempotency_key LIKE $2 ESCAPE '\\' ORDER BY id DESC LIMIT 50", msg_id, _like_prefix(q))]
    found.hl7_in = await hl7.by_control_id(tx, q)
    return found
