"""The uploader against the platform simulator over real HTTP (both dialects): exactly one
acceptance per case version through 5xx, rate limits and a lost answer; field errors ->
dead letter with the platform's words -> correction -> a new version accepted."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import msgspec
import pytest

from cloud import outbox
from cloud.config import CloudConfig
from cloud.db.engine import Database
from cloud.mch import store, uploader
from cloud.mch.errors import MchError
from cloud.mch.profiles import REFERENCE, reference_profile
from firmware_sim.mch_platform import Faults, Platform
from protocol.mch.records import CervicalCase
from tests.cloud.mch.conftest import add_subject
from tests.cloud.support import make_cloud
from tests.support.asgi import serve
from tests.support.waiting import until

TODAY = dt.date(2026, 11, 20)


def config(tmp: Path, db: Database, url: str) -> CloudConfig:
    (tmp / "cloud").mkdir(parents=True, exist_ok=True)
    (tmp / "cloud" / "mch.secret").write_text("platform-secret\n")
    cfg, _ = make_cloud(tmp / "cloud", db.url, f'[mch]\nenabled = true\nplatform_url = "{url}"\napp_key = "mchub"\n'
                        'rate_per_s = 200\ntimeout_s = 0.5\nlease_s = 0.3\n'
                        '[outbox]\nbase_delay_s = 0.02\nmax_delay_s = 0.1\nmax_attempts = 50\n')
    return cfg


async def queue(db: Database, n: int, **fields: Any) -> list[str]:
    ids = []
    for i in range(n):
        sid = await add_subject(db)
        case = CervicalCase(case_id=f"CX-{sid}-{i}", site_id="S1", subject_id=str(sid), screened_on="2026-11-01",
                            hpv="negative", **fields)
        async with db.transaction() as tx:
            await store.save(tx, store.Assembled(case), reference_profile(), TODAY)
        ids.append(case.case_id)
    return ids


async def settle(db: Database, cfg: CloudConfig) -> None:
    """Drain until nothing is pending (retries become due after their backoff)."""
    async def settled() -> bool:
        await uploader.drain(db, cfg, reference_profile(), say=lambda _: None)
        async with db.transaction() as tx:
            pending = await tx.fetchval("SELECT COUNT(*) FROM outbox WHERE topic = 'mch.upload' AND status = 'pending'")
        return not pending

    await until(settled, "uploads to settle", interval=0.05)


async def statuses(db: Database) -> dict[str, str]:
    async with db.transaction() as tx:
        return {f"{r['case_id']}/{r['version']}": r["status"] for r in await tx.fetch(
            "SELECT case_id, version, status FROM mch_records")}


async def test_every_version_accepted_once_through_outages_and_rate_limits(db: Database, tmp_path: Path) -> None:
    platform = Platform(rate_per_s=20, faults=Faults(error_rate=0.3, slow_rate=0.1, slow_seconds=1.0, seed=4))
    async with serve(platform.app) as url:
        cfg = config(tmp_path, db, url)
        cases = await queue(db, 12)
        await settle(db, cfg)
    assert sorted(c for _, c, _ in platform.state.log) == sorted(cases)
    assert len(platform.state.log) == 12  # once each, though some requests failed or timed out
    assert set((await statuses(db)).values()) == {"accepted"}
    async with db.transaction() as tx:
        states = {r["state"] for r in await tx.fetch("SELECT state FROM mch_cases")}
        dead = await tx.fetchval("SELECT COUNT(*) FROM outbox WHERE status = 'dead'")
    assert states == {"uploaded"} and dead == 0


async def test_a_lost_answer_is_resent_and_answered_duplicate(db: Database, tmp_path: Path) -> None:
    platform = Platform()
    async with serve(platform.app) as url:
        cfg = config(tmp_path, db, url)
        [case_id] = await queue(db, 1)
        [m] = await outbox.claim(db, store.UPLOAD_TOPIC, lease_ms=100)
        client = uploader.client_for(cfg)
        await uploader.deliverer(db, client, reference_profile())(m)  # the platform accepted it ...
        await client.close()
        async with db.transaction() as tx:  # ... but the worker died before it could record that
            await tx.execute("UPDATE mch_records SET status = 'queued'")
        await asyncio.sleep(0.15)
        await settle(db, cfg)
    assert platform.state.log == [("cervical", case_id, 1)] and platform.state.duplicates == 1


async def test_field_error_dead_letter_then_correction_is_a_new_version(db: Database, tmp_path: Path) -> None:
    strict = tmp_path / "strict.toml"  # this platform also requires the woman's age
    strict.write_text(REFERENCE.read_text().replace('required = ["caseNo", "orgCode", "personId", "screenDate"]',
                                                    'required = ["caseNo", "orgCode", "personId", "screenDate", "age"]',
                                                    1))
    platform = Platform(profile=strict)
    async with serve(platform.app) as url:
        cfg = config(tmp_path, db, url)
        [case_id] = await queue(db, 1)
        await settle(db, cfg)
        async with db.transaction() as tx:
            dead = await tx.fetchrow("SELECT id, last_error FROM outbox WHERE status = 'dead'")
            rec = await tx.fetchrow("SELECT status, platform_error FROM mch_records")
            state = await tx.fetchval("SELECT state FROM mch_cases")
        assert "age: required" in dead["last_error"] and state == "refused"
        assert rec["status"] == "refused"
        assert msgspec.json.decode(rec["platform_error"])["errors"] == [{"field": "age", "message": "required"}]
        async with db.transaction() as tx:
            await store.correct(tx, case_id, {"age_years": 45}, actor="nurse1", reason="age from the paper form")
            row = await tx.fetchrow("SELECT payload FROM mch_records WHERE version = 1")
            await store.save(tx, store.Assembled(msgspec.structs.replace(
                msgspec.json.decode(row["payload"], type=CervicalCase), version=1)), reference_profile(), TODAY)
        await settle(db, cfg)
    assert platform.state.log == [("cervical", case_id, 2)]
    assert await statuses(db) == {f"{case_id}/1": "refused", f"{case_id}/2": "accepted"}


async def test_secret_file_errors_name_the_key_and_fix(db: Database, tmp_path: Path) -> None:
    cfg = config(tmp_path, db, "http://127.0.0.1:9")
    (tmp_path / "cloud" / "mch.secret").unlink()
    with pytest.raises(MchError, match=r"\[mch\] secret_file: cannot read .*\n  Fix:"):
        uploader.client_for(cfg)
