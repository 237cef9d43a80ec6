"""Follow-up tasks in the cloud database, and the notifier that tells people about them.

The rules (what must happen next, by when) are pure: :func:`protocol.mch.followup.follow_ups`.
:func:`sync` runs whenever a case gets a new version, in the same transaction: a task
the rules ask for and the case does not have yet is opened (``UNIQUE (case_id, kind)``
makes this idempotent) and a ``mch.followup`` outbox message is queued to notify about
it; an open task the rules no longer ask for — the result it waited for arrived — is
closed. Overdue tasks are listed by :func:`cloud.mch.queries.followups`.

Notifications go through a :class:`Notifier` (an SMS or WeChat template sender in a
deployment); :class:`LoggingNotifier` writes them to the log and is the default — no
message leaves the cloud unless a deployment wires a real sender.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from cloud import outbox
from cloud.db.engine import Tx
from protocol.ids import now_ms
from protocol.mch.followup import follow_ups
from protocol.mch.records import Case

FOLLOWUP_TOPIC = "mch.followup"
log = logging.getLogger("mchub.cloud.mch.followup")


async def sync(tx: Tx, case: Case, subject_id: int | None) -> tuple[int, int]:
    """Open new tasks and close satisfied ones for ``case``; returns (opened, closed)."""
    now = now_ms()
    wanted = {t.kind: t for t in follow_ups(case)}
    rows = await tx.fetch("SELECT id, kind, status FROM mch_followups WHERE case_id = $1", case.case_id)
    have = {r["kind"]: r for r in rows}
    opened = closed = 0
    for kind, t in wanted.items():
        if kind in have:
            if have[kind]["status"] == "closed":  # asked for again (e.g. a corrected result): reopen
                await tx.execute("UPDATE mch_followups SET status = 'open', closed_ms = NULL, due = $1 "
                                 "WHERE id = $2", t.due, have[kind]["id"])
            continue
        task_id = await tx.fetchval(
            "INSERT INTO mch_followups (case_id, kind, subject_id, site_id, closes_on, due, zh, en, created_ms) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (case_id, kind) DO NOTHING RETURNING id",
            case.case_id, kind, subject_id, case.site_id, t.closes_on, t.due, t.zh, t.en, now)
        if task_id is not None:
            opened += 1
            await outbox.enqueue(tx, FOLLOWUP_TOPIC, f"{FOLLOWUP_TOPIC}/{task_id}",
                                 {"task_id": task_id, "case_id": case.case_id, "kind": kind, "due": t.due,
                                  "site_id": case.site_id, "subject_id": subject_id, "zh": t.zh, "en": t.en})
    for kind, r in have.items():
        if kind not in wanted and r["status"] == "open":
            await tx.execute("UPDATE mch_followups SET status = 'closed', closed_ms = $1 WHERE id = $2", now, r["id"])
            closed += 1
    return opened, closed


class Notifier(Protocol):
    """Sends one follow-up notice (to clinic staff or, with consent, the patient)."""

    async def notify(self, task: dict[str, Any]) -> None:
        """Deliver; raise :class:`cloud.outbox.DeliveryError` to retry or dead-letter."""


class LoggingNotifier:
    """Writes each notice to the log (no patient identifiers: subject id, case, task, due date)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def notify(self, task: dict[str, Any]) -> None:
        """Log the notice."""
        self.sent.append(task)
        log.info("follow-up %s for case %s (site %s, subject #%s) due %s: %s / %s", task.get("kind"),
                 task.get("case_id"), task.get("site_id"), task.get("subject_id"), task.get("due"),
                 task.get("zh"), task.get("en"))


def deliverer(notifier: Notifier) -> outbox.Deliver:
    """The outbox delivery function of the ``mch.followup`` topic."""

    async def deliver(message: outbox.Message) -> None:
        await notifier.notify(message.payload)

    return deliver
