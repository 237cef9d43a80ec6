"""Hospital-side panels of the dashboard: MLLP inbound log, HIS control ids, the work list.

The data and its rules belong to the hospital integration (:mod:`cloud.integration.queries`:
every MLLP frame in ``hl7_inbound`` with its ACK code, vitals for the HIS as outbox
messages of topic ``his.vitals`` with control id ``MCHV<id>``, results and studies waiting
for their patient in ``unmatched``); this module only shapes them for the pages.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from cloud.db.engine import Database, Tx
from cloud.integration import queries as iq
from cloud.integration.vitals import TOPIC as VITALS_TOPIC
from cloud.integration.vitals import control_id
from cloud.web.queues import Queue

_VITALS_ID = re.compile(r"MCHV(\d{12})")


async def mllp_log(db: Database, *, limit: int = 30) -> list[dict[str, Any]]:
    """The latest inbound HL7 frames with their ACK codes."""
    return [{**dataclasses.asdict(r), "at_ms": r.received_ms} for r in await iq.inbound_log(db, limit=limit)]


async def by_control_id(tx: Tx, cid: str) -> list[dict[str, Any]]:
    """Inbound frames with this MSH-10 (index ``hl7_inbound_control``, migration 6)."""
    rows = await tx.fetch("SELECT received_ms, peer, sender, control_id, message_type, status, ack_code, reason, "
                          "duplicates, control_id_reused FROM hl7_inbound WHERE control_id = $1 "
                          "ORDER BY id DESC LIMIT 50", cid)
    return [{**dict(r), "at_ms": r["received_ms"]} for r in rows]


def vitals_message_id(text: str) -> int | None:
    """The outbox id behind an outbound control id ``MCHV000000000042`` (None if it is not one)."""
    m = _VITALS_ID.fullmatch(text.strip())
    return int(m.group(1)) if m else None


async def ack_counts(db: Database, since_ms: int) -> list[tuple[str, float]]:
    """Inbound frames since ``since_ms`` by ACK code, plus those not processed yet or failed."""
    by_ack: dict[str, float] = {}
    for (status, ack), n in (await iq.inbound_counts(db, since_ms)).items():
        label = ack or status
        if n or status in ("unprocessed", "failed"):
            by_ack[label] = by_ack.get(label, 0.0) + n
    return sorted(by_ack.items())


def label_vitals(queue: Queue) -> Queue:
    """Show HIS messages by their control id (what the HIS and its logs know)."""
    for item in [*queue.oldest, *queue.dead]:
        if isinstance(item["id"], int) and str(item["label"]).startswith(VITALS_TOPIC):
            item["label"] = f"{control_id(item['id'])} · {item['label']}"
    return queue


async def unmatched_count(tx: Tx) -> int:
    """How many results and studies wait for their patient."""
    return int(await tx.fetchval("SELECT COUNT(*) FROM unmatched WHERE status = 'waiting'") or 0)
