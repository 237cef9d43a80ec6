"""End to end over real sockets: `mchub cloud serve`'s app with the integration on, the HIS
simulator on both sides (results/ADT in over MLLP, vitals out over MLLP), a virtual hub
syncing visits over HTTP, and a PACS sending studies by STOW-RS and C-STORE."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cloud.config import CloudConfig
from cloud.db.engine import Database
from cloud.intake.keystore import CloudKeys
from cloud.integration import queries
from firmware_sim import pacs, pacs_data
from firmware_sim.his import Faults, HisReceiver, adt_message, fields, fixture_messages, lab_message, send_messages
from protocol.hl7.ack import parse_ack
from tests.cloud.integration.conftest import with_national_id, without_national_id
from tests.cloud.mllp.conftest import FIXTURES
from tests.cloud.support import TOKEN, dicom_sender, ensure_site, hub, make_cloud, register_hub, serving
from tests.support.services import free_port
from tests.support.waiting import HANG_S

VISITOR = pacs_data.national_id("330102", "19900307", "021")  # the woman who visits the hub


def integration_toml(mllp_port: int, his_port: int, **his: object) -> str:
    """[mllp] and [his] sections for a test cloud (fast retries)."""
    extra = "".join(f"{k} = {v}\n" for k, v in his.items())
    return (f'[mllp]\nenabled = true\nhost = "127.0.0.1"\nport = {mllp_port}\n'
            f'[mllp.code_map.L]\nHPV16 = "59263-4"\nTCT = "10524-7"\n'
            f'[his]\nenabled = true\nport = {his_port}\nmrn_authority = "HOSP"\n{extra}'
            '[outbox]\nbase_delay_s = 0.05\nmax_delay_s = 0.3\n')


def cloud_with(tmp_path: Path, url: str, toml: str) -> tuple[CloudConfig, CloudKeys]:
    """A cloud directory with these extra sections."""
    return make_cloud(tmp_path / "cloud", url, toml)


async def until(check: Callable[[], Awaitable[Any]], limit_s: float = HANG_S) -> Any:
    """Poll ``check`` until it returns something truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {limit_s} s")
        await asyncio.sleep(0.05)


async def query(cfg: CloudConfig, fn: Callable[[Database], Awaitable[Any]]) -> Any:
    """Run ``fn`` on a separate connection to the cloud database."""
    db = await Database.connect(cfg.database.url, 2)
    try:
        return await fn(db)
    finally:
        await db.close()


async def sql(cfg: CloudConfig, text: str, *args: Any) -> list[Any]:
    """Rows of a query on the cloud database."""
    async def run(db: Database) -> list[Any]:
        async with db.transaction() as tx:
            return await tx.fetch(text, *args)
    return await query(cfg, run)


async def processed(cfg: CloudConfig) -> bool:
    """Every accepted message is processed."""
    counts = await query(cfg, queries.inbound_counts)
    return counts[("unprocessed", "")] == 0


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite (the embedded default) and PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}"
    return str(request.getfixturevalue("pg_dsn"))


async def test_results_in_and_vitals_out_through_the_his_simulator(tmp_path: Path, db_url: str) -> None:
    his = HisReceiver(Faults(drop_before=0.15, drop_after=0.15, delay=0.15, delay_seconds=1.5, seed=3))
    his_port = await his.start()
    mllp_port = free_port()
    cfg, keys = cloud_with(tmp_path, db_url, integration_toml(mllp_port, his_port, ack_timeout_s=0.5, attempts=2))
    h = hub(keys, "H100")
    async with serving(cfg) as url, aiohttp.ClientSession() as http:
        await ensure_site(cfg, "S1")
        await register_hub(cfg, "H100", site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
        # inbound: fixtures, a screening result (national ID), one with an MRN nobody knows yet, and the
        # HIS registering our visitor (MRN + national ID), over one connection with garbage between frames
        fixtures = list(fixture_messages(FIXTURES).values())
        register = with_national_id(adt_message(900, "A04"), VISITOR)
        messages = [*fixtures, lab_message(1, "GB18030"), without_national_id(lab_message(2)), register]
        answers = [parse_ack(a) for a in await send_messages("127.0.0.1", mllp_port, messages, garbage=True)]
        assert all(a.code in ("AA", "CA") for a in answers), [a.reason for a in answers]
        await until(lambda: processed(cfg))
        waiting = await query(cfg, queries.unmatched)
        assert "M000002" in {i.mrn for i in waiting}
        # a late ADT names the waiting patient: resolved automatically
        ack = parse_ack((await send_messages("127.0.0.1", mllp_port, [with_national_id(adt_message(2, "A08"))]))[0])
        assert ack.code == "AA"
        await until(lambda: processed(cfg))
        assert "M000002" not in {i.mrn for i in await query(cfg, queries.unmatched)}
        lab = await sql(cfg, "SELECT kind, code, subject_id FROM results WHERE code IN ('59263-4', '10524-7')")
        assert len(lab) == 4 and all(r["subject_id"] is not None for r in lab)
        # outbound: five visits of our visitor; the HIS drops, delays and answers late
        for _ in range(5):
            h.add_visit(national_id=VISITOR)
        assert await h.sync(http, url) == 200

        async def delivered() -> bool:
            rows = await query(cfg, lambda db: queries.outbound_queue(db))
            return len(rows) == 5 and all(r.status == "done" for r in rows)

        await until(delivered, 120)
    await his.close()
    assert len(his.accepted) == 5 and not his.refused  # hl7apy STRICT validation passed for each
    assert len(his.receipts) > 5  # the faults forced resends (same control ids)
    sessions = {fields(m, "OBR")[2] for m in his.accepted.values()}
    assert len(sessions) == 5
    message = next(iter(his.accepted.values())).decode()
    pid = fields(message.encode(), "PID")
    assert pid[3] == f"M000900^^^HOSP^MR~{VISITOR}^^^^NNCHN"  # MRN learned from the ADT + national ID
    obx = [line.split("|") for line in message.split("\r") if line.startswith("OBX")]
    assert [o[3].split("^")[0] for o in obx] == ["8480-6", "8462-4", "8867-4", "8302-2", "29463-7", "39156-5",
                                                 "8310-5"]
    assert all(o[2] == "NM" and o[6].endswith("^UCUM") and o[11] == "F" for o in obx)


async def test_a_refused_message_is_a_dead_letter_with_the_reason_and_can_be_replayed(tmp_path: Path) -> None:
    his = HisReceiver(Faults(error=1.0))
    his_port = await his.start()
    cfg, keys = cloud_with(tmp_path, f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}",
                           integration_toml(free_port(), his_port, ack_timeout_s=2))
    h = hub(keys, "H101")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with serving(cfg) as url, aiohttp.ClientSession() as http:
        await ensure_site(cfg, "S1")
        await register_hub(cfg, "H101", site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
        h.add_visit(national_id=VISITOR)
        assert await h.sync(http, url) == 200

        async def dead() -> list[Any]:
            async with http.get(f"{url}/integration/v1/outbound?status=dead", headers=headers) as r:
                return list((await r.json())["messages"])

        [letter] = await until(dead)
        assert letter["last_error"] == "AE: patient not registered in HIS (simulated)" and letter["attempts"] == 1
        his.faults = dataclasses.replace(his.faults, error=0.0)
        async with http.post(f"{url}/integration/v1/outbound/{letter['id']}/replay", headers=headers) as r:
            assert r.status == 200
        async with http.post(f"{url}/integration/v1/outbound/{letter['id']}/replay") as r:
            assert r.status == 401  # the token is required

        async def done() -> bool:
            rows = await query(cfg, lambda db: queries.outbound_queue(db, status="done"))
            return len(rows) == 1
        await until(done)
    await his.close()
    assert list(his.accepted) == [letter["control_id"]]
    assert his.refused == {letter["control_id"]: "patient not registered in HIS (simulated)"}
    audit = await sql(cfg, "SELECT actor FROM audit_log WHERE action = 'outbox.replay'")
    assert [r["actor"] for r in audit] == ["integration-api"]


async def test_studies_by_stow_rs_and_c_store_are_indexed_against_subjects(tmp_path: Path) -> None:
    scp_port = free_port()
    toml = (f'[dicom]\nenabled = true\nobject_dir = "dicom"\nscp_host = "127.0.0.1"\nscp_port = {scp_port}\n'
            'allowed_calling_aets = { SIMPACS = ["127.0.0.1"] }\n')
    cfg, _ = cloud_with(tmp_path, f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}", toml)
    stranger = pacs_data.Patient(national_id="", mrn="MRN0777", mrn_issuer="HOSP")
    async with serving(cfg) as url:
        answer = await pacs.stow(f"{url}/dicomweb", [pacs_data.to_part10(pacs_data.ultrasound()),
                                                    pacs_data.to_part10(pacs_data.basic_text_sr(birads="4A"))],
                                 credentials=await dicom_sender(url))
        assert answer.status == 200
        statuses = await pacs.cstore_async([pacs_data.mammogram(), pacs_data.ultrasound(stranger)], "127.0.0.1",
                                           scp_port)
        assert [s.status for s in statuses] == [0, 0]
        rows = await sql(cfg, "SELECT family, subject_id, birads, sr_text_enc FROM dicom_instances ORDER BY family")
        assert [r["family"] for r in rows] == ["MG", "SR", "US", "US"]
        known = {r["subject_id"] for r in rows} - {None}
        assert len(known) == 1 and sum(r["subject_id"] is None for r in rows) == 1
        assert [r["birads"] for r in rows if r["family"] == "SR"] == ["4A"]
        sealed = [bytes(r["sr_text_enc"]) for r in rows if r["sr_text_enc"]]
        assert sealed and not any(b"BI-RADS 4A" in s or "建议活检".encode() in s for s in sealed)
        [item] = await query(cfg, queries.unmatched)
        assert (item.kind, item.mrn, item.mrn_authority) == ("dicom", "MRN0777", "HOSP")
        birads = await sql(cfg, "SELECT kind, value, subject_id FROM results WHERE source = 'dicom'")
        assert [(r["kind"], r["value"], r["subject_id"]) for r in birads] == [("birads", "4A", known.pop())]
