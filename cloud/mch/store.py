"""Cases and their versioned upload records in the cloud database (tables of migration 5).

:func:`save` is the one way a case changes. Inside the caller's transaction it

1. applies staff corrections (``overrides``) on top of what was assembled from data;
2. validates the result (:func:`protocol.mch.validate.validate`) and checks that the
   platform profile can express it; computes what is still missing;
3. compares it with the latest stored version: unchanged content stores nothing (so
   re-assembling the same data is free and idempotent); changed content becomes a new
   version, ``held`` (field errors or missing results) or ``queued``;
4. for a queued version, enqueues one ``mch.upload`` outbox message keyed
   ``mch.upload/<case>/<version>`` (older queued versions are superseded: only the latest
   content of a case goes out);
5. brings the case's follow-up tasks up to date (:mod:`cloud.mch.followups`).

Case states: ``incomplete`` (valid so far, results missing), ``invalid`` (field errors:
held, not uploaded), ``ready`` (queued for upload), ``uploaded``, ``refused`` (the
platform's field errors, see the dead letter).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import msgspec

from cloud import audit, outbox
from cloud.db.engine import Tx
from cloud.mch import followups
from cloud.mch.errors import MchError
from protocol.ids import now_ms
from protocol.mch.profile import Profile, ProfileError
from protocol.mch.records import Case, case_from_json, case_to_json
from protocol.mch.validate import FieldError, missing, validate

UPLOAD_TOPIC = "mch.upload"
_enc = msgspec.json.Encoder()


def dumps(value: Any) -> str:
    """Compact JSON text (for TEXT columns)."""
    return _enc.encode(value).decode()


@dataclass
class Assembled:
    """A case as assembled from data, with derived values (not uploaded) and its sources."""

    case: Case
    derived: dict[str, Any] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Saved:
    """What :func:`save` did: ``unchanged``, ``held`` or ``queued`` (a new version)."""

    case_id: str
    outcome: str
    version: int
    state: str
    errors: tuple[FieldError, ...] = ()


def upload_key(case_id: str, version: int) -> str:
    """Idempotency key of one upload (outbox and platform)."""
    return f"{UPLOAD_TOPIC}/{case_id}/{version}"


def with_overrides(case: Case, overrides: dict[str, Any]) -> Case:
    """``case`` with staff corrections applied; MchError when one does not fit its field."""
    if not overrides:
        return case
    data = msgspec.to_builtins(case) | overrides
    try:
        return msgspec.convert(data, type(case))
    except msgspec.ValidationError as exc:
        raise MchError(f"correction does not fit case {case.case_id}: {exc}") from exc


def check(case: Case, profile: Profile, today: dt.date | None = None) -> list[FieldError]:
    """Field errors and warnings, plus a profile error when the platform cannot take the record."""
    errors = validate(case, today)
    if not any(e.severity == "error" for e in errors):
        try:
            profile.to_platform(case)
        except ProfileError as exc:
            errors.append(FieldError(field="profile", rule="profile", zh=f"平台映射失败：{exc}",
                                     en=f"platform profile cannot express the record: {exc}"))
    return errors


def _stripped(case: Case) -> bytes:
    return case_to_json(msgspec.structs.replace(case, version=0))


_LOCK = "SELECT * FROM mch_cases WHERE case_id = $1"
_LOCK_PG = _LOCK + " FOR UPDATE"


async def _lock(tx: Tx, case_id: str) -> Any:
    return await tx.fetchrow(_LOCK_PG if tx.dialect == "postgres" else _LOCK, case_id)


async def save(tx: Tx, assembled: Assembled, profile: Profile, today: dt.date | None = None) -> Saved:
    """Store ``assembled`` as described in the module docstring."""
    now = now_ms()
    row = await _lock(tx, assembled.case.case_id)
    overrides: dict[str, Any] = msgspec.json.decode(row["overrides"]) if row else {}
    case = with_overrides(assembled.case, overrides)
    errors = check(case, profile, today)
    blocking = [e for e in errors if e.severity == "error"]
    lacking = missing(case)
    state = "invalid" if blocking else "incomplete" if lacking else "ready"
    version = int(row["version"]) if row else 0
    latest = None
    if version:
        payload = await tx.fetchval("SELECT payload FROM mch_records WHERE case_id = $1 AND version = $2",
                                    case.case_id, version)
        latest = case_from_json(payload) if payload else None
    if row is None:
        await tx.execute(
            "INSERT INTO mch_cases (case_id, type, subject_id, site_id, screened_on, state, created_ms, updated_ms) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", case.case_id, _kind(case), _subject(case), case.site_id,
            case.screened_on, state, now, now)
    if latest is not None and _stripped(latest) == _stripped(case):
        await tx.execute("UPDATE mch_cases SET derived = $1, sources = $2 WHERE case_id = $3",
                         dumps(assembled.derived), dumps(assembled.sources), case.case_id)
        return Saved(case.case_id, "unchanged", version, row["state"], tuple(errors))
    version += 1
    case = msgspec.structs.replace(case, version=version)
    queued = not blocking and not lacking
    await tx.execute("UPDATE mch_records SET status = 'superseded' WHERE case_id = $1 AND status = 'queued'",
                     case.case_id)
    await tx.execute(
        "INSERT INTO mch_records (case_id, version, payload, errors, missing, status, outbox_key, created_ms) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", case.case_id, version, case_to_json(case).decode(),
        dumps(errors), dumps(lacking), "queued" if queued else "held",
        upload_key(case.case_id, version) if queued else None, now)
    if queued:
        await outbox.enqueue(tx, UPLOAD_TOPIC, upload_key(case.case_id, version),
                             {"case_id": case.case_id, "version": version, "type": _kind(case)})
    await tx.execute(
        "UPDATE mch_cases SET state = $1, missing = $2, version = $3, derived = $4, sources = $5, site_id = $6, "
        "screened_on = $7, updated_ms = $8 WHERE case_id = $9", state, dumps(lacking), version,
        dumps(assembled.derived), dumps(assembled.sources), case.site_id, case.screened_on, now, case.case_id)
    await followups.sync(tx, case, _subject(case))
    return Saved(case.case_id, "queued" if queued else "held", version, state, tuple(errors))


def _kind(case: Case) -> str:
    return str(type(case).__struct_config__.tag)


def _subject(case: Case) -> int | None:
    return int(case.subject_id) if case.subject_id.isdigit() else None


async def correct(tx: Tx, case_id: str, changes: dict[str, Any], *, actor: str, reason: str) -> None:
    """Record staff corrections (field -> value; None removes the correction), audited.

    The next :func:`save` of the case (the caller re-assembles it) applies them and, when
    the content changed, stores a new version.
    """
    row = await _lock(tx, case_id)
    if row is None:
        raise MchError(f"case {case_id} does not exist; list cases with `mchub cloud mch cases`")
    overrides: dict[str, Any] = msgspec.json.decode(row["overrides"])
    for name, value in changes.items():
        if value is None:
            overrides.pop(name, None)
        else:
            overrides[name] = value
    payload = await tx.fetchval("SELECT payload FROM mch_records WHERE case_id = $1 AND version = $2",
                                case_id, row["version"])
    if payload is not None:
        base = msgspec.to_builtins(case_from_json(payload))
        unknown = sorted(set(changes) - set(base) - {"type"})
        if unknown:
            raise MchError(f"case {case_id} has no field {', '.join(unknown)}; fields: {', '.join(sorted(base))}")
        with_overrides(case_from_json(payload), overrides)  # raises MchError when a value does not fit
    await tx.execute("UPDATE mch_cases SET overrides = $1, updated_ms = $2 WHERE case_id = $3",
                     dumps(overrides), now_ms(), case_id)
    await audit.write(tx, actor=actor, action="mch.correct", outcome="ok", subject_id=row["subject_id"],
                      reason=reason[:200], detail={"case_id": case_id, "fields": sorted(changes)})


async def get_state(tx: Tx, name: str) -> str | None:
    """A value of ``mch_state``."""
    value = await tx.fetchval("SELECT value FROM mch_state WHERE name = $1", name)
    return None if value is None else str(value)


async def set_state(tx: Tx, name: str, value: str) -> None:
    """Set a value of ``mch_state``."""
    await tx.execute("INSERT INTO mch_state (name, value, updated_ms) VALUES ($1, $2, $3) ON CONFLICT (name) "
                     "DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms", name, value, now_ms())
