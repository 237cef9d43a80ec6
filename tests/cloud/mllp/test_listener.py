"""The MLLP listener over real sockets, storing into PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from cloud.db.engine import Database
from cloud.integration.inbound import Hl7Processor
from cloud.mllp.db_store import Hl7Store
from cloud.mllp.server import ListenerConfig, MllpListener
from firmware_sim.his import MALFORMED, adt_message, fixture_messages, frame, lab_message, send_messages, unframe
from protocol.hl7.message import parse
from tests.cloud.mllp.conftest import FIXTURES, acks, at_rest, rows

pytestmark = pytest.mark.postgres


async def test_every_fixture_is_received_acked_and_stored_with_its_observations(
        pg_listener: MllpListener, pg_store: Hl7Store, pg_db: Database) -> None:
    fixtures = fixture_messages(FIXTURES)
    assert len(fixtures) >= 3
    generated = [lab_message(1, "UTF-8"), lab_message(2, "GB18030"), adt_message(3, "A01"), adt_message(4, "A40")]
    messages = [*fixtures.values(), *generated]
    answers = acks(await send_messages("127.0.0.1", pg_listener.port, messages, seed=3, garbage=True))
    expected_ids = [parse(m).header.control_id for m in messages]
    assert [a.control_id for a in answers] == expected_ids
    # the NIST message asks for enhanced mode (MSH-15 AL): a commit ack
    assert [a.code for a in answers] == ["CA" if parse(m).header.enhanced else "AA" for m in messages]
    stored = await rows(pg_db, "status = 'accepted'")
    assert [bytes(r["raw"]) for r in stored] == messages
    garbage = await rows(pg_db, "status = 'garbage'")
    assert garbage and all(bytes(r["raw"]).strip() == b"junk" for r in garbage)
    assert pg_listener.stats.garbage == len(garbage)

    processor = Hl7Processor(pg_db, pg_store, at_rest())
    assert await processor.run_once() == len(messages)
    async with pg_db.transaction() as tx:
        counts = {r["control_id"]: r["n"] for r in await tx.fetch(
            "SELECT m.control_id, COUNT(r.id) AS n FROM hl7_inbound m "
            "LEFT JOIN results r ON r.origin = 'hl7:' || m.uid "
            "WHERE m.status = 'accepted' GROUP BY m.control_id")}
    for m in messages:
        parsed = parse(m)
        obx = sum(len(o.observations) for o in parsed.orders) if parsed.header.message_type == "ORU" else 0
        assert counts[parsed.header.control_id] == obx
    assert counts["NIST-LRI-NG-002.00"] == 28
    assert await pg_store.fetch_pending() == []
    assert all(r["process_error"] is None for r in await rows(pg_db, "status = 'accepted'"))


async def test_malformed_messages_get_ae_or_ar_with_a_reason_and_are_stored(
        pg_listener: MllpListener, pg_db: Database) -> None:
    answers = acks(await send_messages("127.0.0.1", pg_listener.port, list(MALFORMED.values())))
    by_case = dict(zip(MALFORMED, answers, strict=True))
    assert by_case["not numeric"].code == "AE" and "not a number" in by_case["not numeric"].reason
    assert by_case["no control id"].code == "AE" and "MSH-10" in by_case["no control id"].reason
    assert by_case["unsupported type"].code == "AR" and "200 Unsupported message type" in \
        by_case["unsupported type"].reason
    assert by_case["no PID"].code == "AE" and "PID" in by_case["no PID"].reason
    assert by_case["bad status"].code == "AE" and "OBX-11" in by_case["bad status"].reason
    stored = await rows(pg_db)
    assert [bytes(r["raw"]) for r in stored] == list(MALFORMED.values())
    assert all(r["status"] in ("error", "rejected") and r["reason"] for r in stored)
    assert pg_listener.stats.errors == 4 and pg_listener.stats.rejected == 1


async def test_a_resend_is_detected_as_duplicate_and_stored_once(pg_listener: MllpListener, pg_db: Database) -> None:
    message = lab_message(7)
    first = acks(await send_messages("127.0.0.1", pg_listener.port, [message]))
    again = acks(await send_messages("127.0.0.1", pg_listener.port, [message, message]))
    assert [a.code for a in first + again] == ["AA", "AA", "AA"]
    assert [a.text for a in again] == ["duplicate: already received"] * 2
    stored = await rows(pg_db)
    assert len(stored) == 1 and stored[0]["duplicates"] == 2
    assert pg_listener.stats.duplicates == 2


async def test_many_frames_in_one_write_each_get_their_ack_in_order(pg_listener: MllpListener) -> None:
    messages = [lab_message(i) for i in range(30)]
    answers = acks(await send_messages("127.0.0.1", pg_listener.port, messages, pipeline=True))
    assert [a.control_id for a in answers] == [f"LIS{i:08d}" for i in range(30)]


async def test_concurrent_connections_share_commits(pg_listener: MllpListener, pg_store: Hl7Store,
                                                    pg_db: Database) -> None:
    batches = [[lab_message(c * 100 + i) for i in range(10)] for c in range(12)]
    results = await asyncio.gather(*(send_messages("127.0.0.1", pg_listener.port, b, seed=c)
                                     for c, b in enumerate(batches)))
    assert all(a.code == "AA" for r in results for a in acks(r))
    assert len(await rows(pg_db)) == 120
    assert pg_store.committer.items == 120 and pg_store.committer.batches <= 120


async def test_oversized_message_is_rejected_kept_and_the_connection_goes_on(pg_store: Hl7Store,
                                                                            pg_db: Database) -> None:
    big = fixture_messages(FIXTURES)["LRI_2.0-NG_CBC_Typ_Message.hl7"]
    async with MllpListener(pg_store, ListenerConfig(host="127.0.0.1", port=0, max_size=2048)) as listener:
        answers = acks(await send_messages("127.0.0.1", listener.port, [big, lab_message(1)]))
    assert [a.code for a in answers] == ["CR", "AA"]
    assert answers[0].control_id == "NIST-LRI-NG-002.00" and "exceeds the limit of 2048" in answers[0].reason
    oversized = await rows(pg_db, "status = 'oversized'")
    assert len(oversized) == 1 and bytes(oversized[0]["raw"]) == big[:2048]


async def test_enhanced_mode_never_ack_is_honoured(pg_listener: MllpListener, pg_db: Database) -> None:
    silent = lab_message(1).replace(b"||||||UNICODE", b"|||NE|NE||UNICODE")
    assert parse(silent).header.accept_ack == "NE"
    reader, writer = await asyncio.open_connection("127.0.0.1", pg_listener.port)
    writer.write(frame(silent) + frame(lab_message(2)))
    buffer = bytearray()
    while not (got := unframe(buffer)):
        buffer += await reader.read(65536)
    writer.close()
    assert [a.control_id for a in acks(got)] == ["LIS00000002"]
    assert len(await rows(pg_db, "status = 'accepted'")) == 2


async def test_a_sender_far_ahead_is_paused_and_every_message_still_answered_in_order(
        pg_listener: MllpListener, pg_db: Database) -> None:
    messages = [lab_message(i) for i in range(150)]  # more than the listener lets wait for a commit
    reader, writer = await asyncio.open_connection("127.0.0.1", pg_listener.port)
    writer.write(b"".join(frame(m) for m in messages))
    writer.write_eof()  # half-close: the listener still answers everything it received
    buffer = bytearray()
    while data := await reader.read(65536):
        buffer += data
    writer.close()
    assert [a.control_id for a in acks(unframe(buffer))] == [f"LIS{i:08d}" for i in range(150)]
    assert len(await rows(pg_db)) == 150
