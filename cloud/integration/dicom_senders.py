"""Who may send DICOM: STOW-RS sender credentials (migration 14) and the audit of refusals.

One credential per sending system (a PACS, a modality gateway)::

    name, token = await add_sender(db, "PACS1", actor="cli:root")   # the token is shown once
    await revoke_sender(db, "PACS1", actor="web:li")                # refused from the next request on
    await list_senders(db)

The database keeps the token's SHA-256 digest only. :class:`SenderAuth` is the
``authorise`` callable of :mod:`cloud.dicom.stow`: it looks the digest up on every request
(no cache, so a revoked credential is refused at once) and audits every refusal through
:class:`DicomRefusals`.

:class:`DicomRefusals` is the one seam through which the DICOM doors (STOW-RS 401s, C-STORE
association rejections) write to the audit log. It is bounded: per (door, reason, peer) at
most one row per ``window_s``; refusals in between are counted and the count goes into the
next row's ``detail.suppressed`` (the in-memory table holds at most ``max_keys`` peers).
When the shared aggregated-refusal helper of ``cloud.audit`` is available, point
:meth:`DicomRefusals.record` at it.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

from cloud import audit
from cloud.db.engine import Database, Row
from cloud.dicom.credentials import Presented, check_name, new_token
from cloud.dicom.errors import Unauthorised
from cloud.errors import CloudError
from protocol.ids import now_ms
from provisioning.auth import same_digest, session_digest

log = logging.getLogger("mchub.cloud.integration.dicom")


class SenderError(CloudError):
    """A sender credential cannot be created or revoked (bad name, name in use, unknown sender)."""


@dataclass(frozen=True)
class Sender:
    """One credential as the console and CLI show it (never the token)."""

    id: int
    name: str
    created_ms: int
    created_by: str
    revoked_ms: int | None
    revoked_by: str | None
    note: str

    @property
    def active(self) -> bool:
        """Not revoked."""
        return self.revoked_ms is None


async def add_sender(db: Database, name: str, *, actor: str, note: str = "") -> tuple[Sender, str]:
    """Create a credential; returns it and the token (shown once, never stored)."""
    try:
        check_name(name)
    except Unauthorised as exc:
        raise SenderError(str(exc)) from exc
    token, now = new_token(), now_ms()
    async with db.transaction() as tx:
        if await tx.fetchval("SELECT 1 FROM dicom_senders WHERE name = $1 AND revoked_ms IS NULL", name):
            raise SenderError(f"sender {name} already has an active credential; revoke it first or pick another name")
        await tx.execute("INSERT INTO dicom_senders (name, token_digest, created_ms, created_by, note) "
                         "VALUES ($1, $2, $3, $4, $5)", name, session_digest(token), now, actor, note[:200])
        row = await tx.fetchrow("SELECT * FROM dicom_senders WHERE name = $1 AND revoked_ms IS NULL", name)
        await audit.write(tx, actor=actor, action="dicom_sender.add", outcome="ok", target=name)
    assert row is not None
    return _sender(row), token


async def revoke_sender(db: Database, name: str, *, actor: str) -> None:
    """Revoke the active credential of ``name``; its next request is refused."""
    async with db.transaction() as tx:
        sid = await tx.fetchval("SELECT id FROM dicom_senders WHERE name = $1 AND revoked_ms IS NULL", name)
        if sid is None:
            raise SenderError(f"sender {name[:70]!r} has no active credential")
        await tx.execute("UPDATE dicom_senders SET revoked_ms = $1, revoked_by = $2 WHERE id = $3",
                         now_ms(), actor, sid)
        await audit.write(tx, actor=actor, action="dicom_sender.revoke", outcome="ok", target=name)


async def list_senders(db: Database) -> list[Sender]:
    """Every credential, active ones first, newest first."""
    async with db.transaction() as tx:
        rows = await tx.fetch("SELECT * FROM dicom_senders ORDER BY (revoked_ms IS NOT NULL), created_ms DESC, id DESC")
    return [_sender(r) for r in rows]


def _sender(r: Row) -> Sender:
    return Sender(int(r["id"]), str(r["name"]), int(r["created_ms"]), str(r["created_by"]),
                  None if r["revoked_ms"] is None else int(r["revoked_ms"]), r["revoked_by"], str(r["note"] or ""))


class DicomRefusals:
    """Audit refusals at the DICOM doors in bounded space (see the module docstring)."""

    def __init__(self, db: Database | None = None, *, window_s: float = 60.0, max_keys: int = 1024) -> None:
        self.db = db
        self.window_s = window_s
        self.max_keys = max_keys
        self._last: OrderedDict[tuple[str, str, str], tuple[float, int]] = OrderedDict()

    async def __call__(self, door: str, reason: str, peer: str, detail: dict[str, object] | None = None) -> None:
        """Record one refusal (``door``: ``dicomweb`` or ``dicom-scp``); never raises."""
        key, now = (door, reason, peer), time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last[0] < self.window_s:
            self._last[key] = (last[0], last[1] + 1)
            return
        suppressed = last[1] if last is not None else 0
        self._last[key] = (now, 0)
        self._last.move_to_end(key)
        while len(self._last) > self.max_keys:
            self._last.popitem(last=False)
        try:
            await self.record(door, reason, peer, {**(detail or {}), "suppressed": suppressed})
        except Exception:  # the refusal stands whether or not it could be written down
            log.exception("could not audit a refused DICOM %s request from %s", door, peer)

    async def record(self, door: str, reason: str, peer: str, detail: dict[str, object]) -> None:
        """Write one audit row (the seam for the shared refusal helper)."""
        if self.db is None:
            log.warning("DICOM %s refused %s (%s): no database bound to audit it", door, peer, reason)
            return
        async with self.db.transaction() as tx:
            await audit.write(tx, actor=f"{door}:{peer}", action=f"{door}.refused", outcome="refused",
                              reason=reason, detail={"peer": peer, **detail})


class SenderAuth:
    """The STOW-RS ``authorise`` callable: a valid, unrevoked sender credential or 401 (audited)."""

    def __init__(self, refusals: DicomRefusals) -> None:
        self.refusals = refusals
        self.db: Database | None = None

    def bind(self, db: Database) -> None:
        """Use this database from now on."""
        self.db = db

    async def __call__(self, given: Presented | None, peer: str, path: str) -> str:
        """The sender's name; raises :class:`Unauthorised` after auditing the refusal."""
        try:
            return await self._check(given)
        except Unauthorised as exc:
            await self.refusals("dicomweb", "no_credentials" if given is None else "bad_credentials", peer,
                                {"path": path[:200], "name": (given.name or "")[:64] if given else ""})
            log.warning("STOW-RS from %s refused: %s", peer, exc)
            raise

    async def _check(self, given: Presented | None) -> str:
        if given is None:
            raise Unauthorised("this endpoint needs a DICOM sender credential (HTTP Basic or Bearer)")
        if self.db is None:
            raise Unauthorised("the DICOM intake is not connected to the database yet")
        digest = session_digest(given.token)
        async with self.db.transaction() as tx:
            row = await tx.fetchrow("SELECT name, token_digest FROM dicom_senders "
                                    "WHERE token_digest = $1 AND revoked_ms IS NULL", digest)
        if row is None or not same_digest(str(row["token_digest"]), digest):
            raise Unauthorised("unknown or revoked DICOM sender credential")
        if given.name is not None and given.name != row["name"]:
            raise Unauthorised("the Basic user name does not match the credential's sender")
        return str(row["name"])
