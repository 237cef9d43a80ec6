"""HL7 inbound into the cloud tables: results matched by national ID or MRN, the unmatched work
list, a late ADT resolving it, A40 merges, manual resolution — on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from cloud.db.engine import Database
from cloud.errors import PatientIndexError
from cloud.integration import queries
from cloud.integration.message_browser import Rules, reprocess
from cloud.records import patients
from firmware_sim.his import adt_message, lab_message
from tests.cloud.integration.conftest import NID, Env, with_national_id, without_national_id


async def in_tx(db: Database, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    async with db.transaction() as tx:
        return await fn(tx, *args, **kwargs)


async def test_a_result_with_a_national_id_lands_on_that_subject(env: Env) -> None:
    await env.receive(lab_message(1, "GB18030"))
    rows = await env.q("SELECT subject_id, kind, code, value, unit FROM results ORDER BY source_key")
    assert [(r["kind"], r["code"]) for r in rows] == [("hpv", "59263-4"), ("cytology", "10524-7"),
                                                      ("lab", "718-7"), ("pathology", "22637-3")]
    subject = await in_tx(env.db, patients.find_by_national_id, env.at_rest, NID)
    assert subject is not None and {r["subject_id"] for r in rows} == {subject}
    assert rows[2]["value"] == "128" and rows[2]["unit"] == "g/L"
    ids = await env.q("SELECT authority, value, subject_id FROM subject_identifiers")
    assert [(r["authority"], r["value"], r["subject_id"]) for r in ids] == [("HOSP", "M000001", subject)]
    assert await queries.unmatched(env.db) == []
    _, name = await in_tx(env.db, patients.reveal, env.at_rest, subject, actor="test", purpose="check")
    assert name == "王秀英"


async def test_an_unknown_mrn_waits_and_a_late_adt_resolves_it(env: Env) -> None:
    await env.receive(without_national_id(lab_message(2)))
    waiting = await queries.unmatched(env.db)
    assert [(i.kind, i.mrn, i.mrn_authority, i.has_national_id) for i in waiting] == [("hl7", "M000002", "HOSP",
                                                                                       False)]
    assert {r["subject_id"] for r in await env.q("SELECT subject_id FROM results")} == {None}
    await env.receive(with_national_id(adt_message(2, "A04")))  # the HIS registers her: MRN + national ID
    assert await queries.unmatched(env.db) == []
    resolved = await queries.unmatched(env.db, status="resolved")
    subject = await in_tx(env.db, patients.find_by_national_id, env.at_rest, NID)
    assert resolved[0].subject_id == subject and resolved[0].resolved_by == "hl7:ADT^A04"
    assert {r["subject_id"] for r in await env.q("SELECT subject_id FROM results")} == {subject}
    assert len(await queries.results_of(env.db, subject)) == 4


async def test_an_adt_without_national_id_makes_the_mrn_known(env: Env) -> None:
    await env.receive(adt_message(3, "A01"), without_national_id(lab_message(3)))
    subject = (await env.q("SELECT subject_id FROM subject_identifiers WHERE value = 'M000003'"))[0]["subject_id"]
    assert {r["subject_id"] for r in await env.q("SELECT subject_id FROM results")} == {subject}
    assert await queries.unmatched(env.db) == []


async def test_a40_merges_through_the_patient_index_and_both_mrns_match(env: Env) -> None:
    await env.receive(adt_message(4, "A01"), adt_message(5, "A04"))
    before = {r["value"]: r["subject_id"] for r in await env.q("SELECT value, subject_id FROM subject_identifiers")}
    a40 = adt_message(5, "A40").replace(b"ADT00000005", b"ADT00000050")
    await env.receive(a40)  # M000004 merged into M000005
    merged = await env.q("SELECT merged_into FROM subjects WHERE id = $1", before["M000004"])
    assert merged[0]["merged_into"] == before["M000005"]
    audit = await env.q("SELECT actor FROM audit_log WHERE action = 'subject.merge'")
    assert [r["actor"] for r in audit] == ["hl7:ADT^A40"]
    await env.receive(without_national_id(lab_message(4)))  # a result still sent under the old MRN
    assert {r["subject_id"] for r in await env.q("SELECT subject_id FROM results")} == {before["M000005"]}
    assert len(await queries.results_of(env.db, before["M000005"])) == 4  # reads follow the merge
    await env.receive(a40.replace(b"ADT00000050", b"ADT00000099"))  # a repeat: no second merge
    assert len(await env.q("SELECT id FROM subject_merges")) == 1


async def test_manual_resolution_by_national_id_is_audited(env: Env) -> None:
    await env.receive(without_national_id(lab_message(6)))
    item = (await queries.unmatched(env.db))[0]
    with pytest.raises(PatientIndexError):
        await queries.resolve_unmatched(env.db, env.at_rest, item.id, actor="web:alice", national_id="123")
    sid = await queries.resolve_unmatched(env.db, env.at_rest, item.id, actor="web:alice", national_id=NID)
    assert sid == await in_tx(env.db, patients.find_by_national_id, env.at_rest, NID)
    assert {r["subject_id"] for r in await env.q("SELECT subject_id FROM results")} == {sid}
    with pytest.raises(PatientIndexError, match="not waiting"):
        await queries.resolve_unmatched(env.db, env.at_rest, item.id, actor="web:alice", subject_id=sid)
    audit = await env.q("SELECT actor FROM audit_log WHERE action = 'unmatched.resolve'")
    assert [r["actor"] for r in audit] == ["web:alice"]


async def test_processing_is_idempotent_and_failures_are_kept_with_the_reason(env: Env) -> None:
    await env.receive(lab_message(7))
    uid = (await queries.inbound_log(env.db))[0].uid
    assert await queries.inbound_raw(env.db, env.at_rest, uid, actor="web:bob") == lab_message(7)
    assert (await env.q("SELECT actor FROM audit_log WHERE action = 'hl7.view'"))[0]["actor"] == "web:bob"
    await reprocess(env.db, env.at_rest, uid, actor="test", rules=Rules())
    while await env.processor.run_once():
        pass
    assert len(await env.q("SELECT id FROM results")) == 4  # processed twice, stored once
    # accepted by an older listener, no longer parseable: marked with the reason, not blocking
    await env.receive(b"MSH|^~\\&|LIS|H|MCHUB|C|2026||ORU^R01|OLD1|P|2.5.1\r", lab_message(8))
    log = {r.control_id: r for r in await queries.inbound_log(env.db)}
    assert log["OLD1"].process_error is not None and log["OLD1"].process_error.startswith("required_field_missing")
    assert log["LIS00000008"].processed_ms is not None and log["LIS00000008"].process_error is None
    counts = await queries.inbound_counts(env.db)
    assert counts[("accepted", "AA")] == 3 and counts[("failed", "")] == 1 and counts[("unprocessed", "")] == 0


async def test_an_a40_whose_processing_fails_leaves_no_merge_behind(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The A40 merge commits with the rest of its message or not at all (issue 19, finding 7)."""
    from cloud.errors import DatabaseError
    from cloud.integration.inbound import Hl7Processor

    await env.receive(adt_message(7, "A01"), adt_message(8, "A04"))
    real_apply = Hl7Processor._apply

    async def apply_then_lose_the_database(self, *args):  # type: ignore[no-untyped-def]
        await real_apply(self, *args)
        raise DatabaseError("the connection was lost before COMMIT")  # fault injected after every write

    monkeypatch.setattr(Hl7Processor, "_apply", apply_then_lose_the_database)
    with pytest.raises(DatabaseError):
        await env.receive(adt_message(8, "A40").replace(b"ADT00000008", b"ADT00000080"))
    assert await env.q("SELECT id FROM subject_merges") == []  # rolled back with its message
    assert await env.q("SELECT merged_into FROM subjects WHERE merged_into IS NOT NULL") == []
    pending = await env.q("SELECT uid FROM hl7_inbound WHERE processed_ms IS NULL")
    assert len(pending) == 1  # the message is still waiting: processed again once the database is back
    monkeypatch.setattr(Hl7Processor, "_apply", real_apply)
    while await env.processor.run_once():
        pass
    assert len(await env.q("SELECT id FROM subject_merges")) == 1
    assert await env.q("SELECT uid FROM hl7_inbound WHERE processed_ms IS NULL") == []


async def test_one_group_sees_what_its_earlier_messages_did(env: Env) -> None:
    """Many messages in one processing transaction give the same rows as one message per transaction:
    a result before the ADT that names her waits and is resolved by it, a result after it matches
    at once, and a subject created by one message's national ID is found by the next one's MRN."""
    later = lab_message(11).replace(b"LIS00000011", b"LIS00000111")
    await env.receive(without_national_id(lab_message(10)), with_national_id(adt_message(10, "A04")),
                      without_national_id(lab_message(10).replace(b"LIS00000010", b"LIS00000110")),
                      lab_message(11), without_national_id(later))
    subject = await in_tx(env.db, patients.find_by_national_id, env.at_rest, NID)
    rows = await env.q("SELECT origin, subject_id FROM results ORDER BY id")
    assert len(rows) == 4 * 4 and {r["subject_id"] for r in rows} == {subject}  # 4 results (the ADT has none)
    origins = [r["origin"] for r in rows]
    assert origins == sorted(origins) and len(set(origins)) == 4  # written in arrival order (uid: uuid7)
    assert await queries.unmatched(env.db) == []
    resolved = await queries.unmatched(env.db, status="resolved")
    assert [i.resolved_by for i in resolved] == ["hl7:ADT^A04"]
    ids = await env.q("SELECT value, subject_id FROM subject_identifiers ORDER BY value")
    assert [(r["value"], r["subject_id"]) for r in ids] == [("M000010", subject), ("M000011", subject)]


async def test_items_waiting_from_earlier_groups_are_resolved_by_the_mrn_merged_away(env: Env) -> None:
    """Which items wait is read once per group: an A40 in a later group still resolves the item
    waiting under the MRN it merges away (MRG-1), and an item under another MRN keeps waiting."""
    await env.receive(without_national_id(lab_message(30)))  # M000030: nobody knows her yet
    await env.receive(without_national_id(lab_message(32)))
    await env.receive(adt_message(31, "A04"))
    await env.receive(adt_message(31, "A40").replace(b"ADT00000031", b"ADT00000310"))  # M000030 -> M000031
    subject = (await env.q("SELECT subject_id FROM subject_identifiers WHERE value = 'M000031'"))[0]["subject_id"]
    resolved = await queries.unmatched(env.db, status="resolved")
    assert [(i.mrn, i.subject_id, i.resolved_by) for i in resolved] == [("M000030", subject, "hl7:ADT^A40")]
    assert [i.mrn for i in await queries.unmatched(env.db)] == ["M000032"]
    rows = await env.q("SELECT origin, subject_id FROM results ORDER BY id")
    assert [r["subject_id"] for r in rows] == [subject] * 4 + [None] * 4


async def test_an_adt_naming_nobody_waiting_does_not_split_the_group_and_a_later_one_still_resolves(
        env: Env) -> None:
    """An ADT that names no waiting item of its group lets the group's writes wait (one statement for
    them all); the work list and results stay in step, so a later ADT of the group resolves its item."""
    await env.receive(without_national_id(lab_message(20)), adt_message(21, "A04"),
                      without_national_id(lab_message(22)), with_national_id(adt_message(20, "A04")))
    subject = await in_tx(env.db, patients.find_by_national_id, env.at_rest, NID)
    resolved = await queries.unmatched(env.db, status="resolved")
    assert [(i.mrn, i.subject_id, i.resolved_by) for i in resolved] == [("M000020", subject, "hl7:ADT^A04")]
    assert [i.mrn for i in await queries.unmatched(env.db)] == ["M000022"]
    rows = await env.q("SELECT origin, subject_id FROM results ORDER BY id")
    assert len(rows) == 8 and [r["subject_id"] for r in rows] == [subject] * 4 + [None] * 4
