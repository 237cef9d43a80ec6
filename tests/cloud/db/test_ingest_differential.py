"""SQLite ingest (Python, cloud/intake/sync_store.py) and PostgreSQL ingest (cloud/db/pg_ingest.py)
agree: the same sealed batches, byte for byte — bulk, duplicates, overlaps, a gap, a second
stream reusing a hub's (epoch, seq) with other content, a restored hub's new epoch, a forged
batch — get the same answers and leave the same rows (issue 19, finding 7).

Rows are compared column by column over ``SELECT *`` (so a column added later is compared
too), without what differs by design: serial ids, wall-clock columns of the cloud's own
(received, created, updated, first seen, last batch) and AES-GCM ciphertexts (random
nonces; the blind index and the decrypted name are compared instead).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from cloud.db.engine import Database
from cloud.db.migrations import migrate
from cloud.intake.ingest import Ingestor
from cloud.intake.keystore import CloudKeys, init_keys
from cloud.records.crypto_at_rest import AtRest
from firmware_sim.fleet import VirtualHub, random_national_id
from tests.cloud.support import ensure_site, public_keys, register_hub

pytestmark = pytest.mark.postgres

VOLATILE = {"received_ms", "created_ms", "updated_ms", "first_seen_ms", "last_batch_ms", "next_attempt_ms"}
TABLES = {  # table -> the natural key rows are sorted by
    "readings": ("hub_id", "epoch", "seq"),
    "sessions": ("hub_id", "session_id"),
    "reading_bindings": ("hub_id", "epoch", "seq"),
    "stations": ("hub_id", "station_id"),
    "devices": ("hub_id", "device_id"),
    "sync_state": ("hub_id", "epoch"),
    "outbox": ("idempotency_key",),
}


def _plain(value: Any) -> Any:
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bool):
        return int(value)
    return value


async def _snapshot(db: Database, at_rest: AtRest) -> dict[str, list[tuple[Any, ...]]]:
    async with db.transaction() as tx:
        subjects = {r["id"]: r for r in await tx.fetch("SELECT * FROM subjects")}
        who = {sid: (r["blind_index"], at_rest.open(bytes(r["name_enc"]), "subjects.name") if r["name_enc"] else "")
               for sid, r in subjects.items()}
        out: dict[str, list[tuple[Any, ...]]] = {
            "subjects": sorted((*who[sid], r["sex"], r["birth_date"], r["mrn"]) for sid, r in subjects.items())}
        for table, key in TABLES.items():
            rows = []
            for r in await tx.fetch(f"SELECT * FROM {table}"):  # the table names are ours
                d = {k: _plain(v) for k, v in dict(r).items() if k not in VOLATILE and k != "id"}
                if table == "outbox":  # PostgreSQL's json_build_object spaces its text ('"a" : 1'): same JSON
                    d["payload"] = msgspec.json.decode(d["payload"])
                if "subject_id" in d and d["subject_id"] is not None:
                    d["subject_id"] = who[d["subject_id"]]  # serial ids differ; the person does not
                rows.append((tuple(d[k] for k in key), tuple(sorted(d.items()))))
            out[table] = [row for _, row in sorted(rows, key=lambda kr: kr[0])]
        out["audit"] = sorted((r["actor"], r["action"], r["outcome"], r["hub_id"], r["reason"])
                              for r in await tx.fetch("SELECT * FROM audit_log"))
    return out


@pytest.fixture
async def clouds(tmp_path: Path, pg_dsn: str) -> AsyncIterator[tuple[CloudKeys, dict[str, Database]]]:
    keys = init_keys(tmp_path / "keys")
    dbs = {"sqlite": await Database.connect(f"sqlite:///{tmp_path / 'cloud.db'}"),
           "postgres": await Database.connect(pg_dsn)}
    for db in dbs.values():
        await migrate(db)
        await ensure_site(db, "S1")
    yield keys, dbs
    for db in dbs.values():
        await db.close()


async def test_sqlite_and_postgresql_ingest_agree_row_for_row(clouds: tuple[CloudKeys, dict[str, Database]]) -> None:
    keys, dbs = clouds
    rng = random.Random(19)
    a = VirtualHub("DA", public_keys(keys), random.Random(1))
    b = VirtualHub("DB", public_keys(keys), random.Random(2))
    twin = VirtualHub("DA", public_keys(keys), random.Random(3))  # same hub, key and epoch; other content
    twin.key, twin.epoch = a.key, a.epoch
    for db in dbs.values():
        for h in (a, b):
            await register_hub(db, h.hub_id, site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
    person = random_national_id(rng)
    batches: list[tuple[str, bytes]] = []

    def send(label: str, data: bytes | None) -> None:
        assert data is not None, label
        batches.append((label, data))

    for _ in range(60):  # 360 records: past the PostgreSQL COPY threshold
        a.add_visit()
    send("bulk", a.seal_from(1))
    send("replay", a.seal_from(1))  # the same bytes again
    send("overlap", a.seal_from(355, limit=6))  # 355-360: already stored
    a.add_visit(national_id=person)
    send("gap", a.seal_from(363))  # starts past the mark: 409 with the expected seq
    send("partly new", a.seal_from(355))  # 355-366: six old, six new
    for _ in range(62):  # seqs 1..372
        twin.add_visit()
    send("twin", twin.seal_from(361))  # (DA, epoch, 361..366) again with other content: stored ones win
    send("twin new", twin.seal_from(367))  # the twin's stream goes on past the mark: new seqs
    b.add_visit(national_id=person)  # the same person at another hub: one subject
    b.add_visit()
    send("hub b", b.seal_from(1))
    b.epoch = rng.getrandbits(63) or 1  # hub B restored from a backup: a new epoch starts at seq 1
    b.next_seq, b.pending = 1, []
    b.add_visit()
    send("new epoch", b.seal_from(1))
    forged = bytearray(a.seal_from(1, limit=6) or b"")
    forged[-1] ^= 1
    send("forged", bytes(forged))

    answers: dict[str, list[tuple[str, int, str | None, int]]] = {}
    for name, db in dbs.items():
        ingestor = Ingestor(db, keys)
        answers[name] = []
        for label, data in batches:
            answer = await ingestor.handle(data)
            answers[name].append((label, answer.status, answer.reason, answer.new_readings))
    assert answers["sqlite"] == answers["postgres"]
    statuses = {label: status for label, status, _, _ in answers["sqlite"]}
    assert statuses == {"bulk": 200, "replay": 200, "overlap": 200, "gap": 409, "partly new": 200, "twin": 200,
                        "twin new": 200, "hub b": 200, "new epoch": 200, "forged": 401}
    at_rest = AtRest(keys.at_rest, keys.blind_index)
    sqlite, postgres = await _snapshot(dbs["sqlite"], at_rest), await _snapshot(dbs["postgres"], at_rest)
    assert len(sqlite["readings"]) == 260 and len(sqlite["sync_state"]) == 3  # 65 visits of 4 readings
    for table in sqlite:
        assert sqlite[table] == postgres[table], table
