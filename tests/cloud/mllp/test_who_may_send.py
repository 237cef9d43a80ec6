"""Who may send (issue 16 allow-list, issue 17 finding 6): allow-list, connection limits, timeouts.

Real sockets on loopback, python-hl7's asyncio client as the sender, the real cloud database
for the audit entries. Refusals are aggregated: N refusals from one address in one interval
make ONE audit entry with count N.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import hl7
import pytest
from hl7.mllp import open_hl7_connection

from cloud.db.engine import Database
from cloud.mllp.db_store import Hl7Store
from cloud.mllp.refusals import ACCEPT_ERROR, AcceptErrorFilter, Refusal, Refusals, audit_sink
from cloud.mllp.server import ListenerConfig, MllpListener
from tests.cloud.mllp.conftest import rows
from tests.support.fieldbus import until

pytestmark = pytest.mark.postgres
TIMEOUT = 30.0
ELSEWHERE = (ipaddress.ip_network("10.9.9.0/24"),)  #: an allow-list that does not include loopback
Start = Callable[..., Awaitable[MllpListener]]


def message(cid: str, app: str = "LIS|HOSP") -> str:
    return (f"MSH|^~\\&|{app}|MCHUB|C|20260301||ORU^R01|{cid}|P|2.5.1\r"
            "PID|||9^^^H^MR\rOBR|1\rOBX|1|NM|718-7^Hb^LN||128|g/L|||||F\r")


async def eof(reader: asyncio.StreamReader) -> bool:
    """True once the listener has closed the connection (bounded wait; data before EOF is skipped)."""
    async with asyncio.timeout(TIMEOUT):
        try:
            while await reader.read(65536):
                pass
        except ConnectionResetError:
            pass
    return True


@pytest.fixture
def collected() -> list[Refusal]:
    return []


@pytest.fixture
async def listener_with(pg_store: Hl7Store, collected: list[Refusal]) -> AsyncIterator[Start]:
    started: list[MllpListener] = []

    async def sink(batch: list[Refusal]) -> None:
        collected.extend(batch)

    async def start(**kw: object) -> MllpListener:
        cfg = ListenerConfig(host="127.0.0.1", port=0, refusals=Refusals(sink), **kw)  # type: ignore[arg-type]
        listener = await MllpListener(pg_store, cfg).start()
        started.append(listener)
        return listener

    yield start
    for listener in started:
        await listener.close()


async def test_an_address_off_the_list_is_closed_unread_and_audited_once(
        pg_store: Hl7Store, pg_db: Database) -> None:
    refusals = Refusals(audit_sink(pg_db))
    listener = await MllpListener(pg_store, ListenerConfig(host="127.0.0.1", port=0, allowed=ELSEWHERE,
                                                            refusals=refusals)).start()
    for i in range(5):
        reader, writer = await open_hl7_connection("127.0.0.1", listener.port)
        writer.writemessage(hl7.parse(message(f"X{i}")))
        assert await eof(reader)
        writer.close()
    await listener.close()  # flushes the aggregated refusals
    assert listener.stats.refused == 5 and listener.stats.messages == 0
    assert await rows(pg_db) == []  # nothing from a stranger is read, let alone stored
    async with pg_db.transaction() as tx:
        audited = await tx.fetch("SELECT actor, reason, detail FROM audit_log WHERE action = 'mllp.refused'")
    assert len(audited) == 1
    assert (audited[0]["actor"], audited[0]["reason"]) == ("mllp:127.0.0.1", "sender_not_allowed")
    assert '"count":5' in audited[0]["detail"]


async def test_allow_any_lets_any_address_in(listener_with: Start) -> None:
    listener = await listener_with(allowed=ELSEWHERE, allow_any=True)
    reader, writer = await open_hl7_connection("127.0.0.1", listener.port)
    writer.writemessage(hl7.parse(message("OK1")))
    async with asyncio.timeout(TIMEOUT):
        ack = await reader.readmessage()
    assert str(ack.segment("MSA")[1]) == "AA"
    writer.close()


async def test_a_sending_app_off_the_list_gets_ar_and_the_connection_closes(
        listener_with: Start, pg_db: Database, collected: list[Refusal]) -> None:
    listener = await listener_with(allowed_apps=frozenset({"LIS", "HIS|HOSP"}))
    reader, writer = await open_hl7_connection("127.0.0.1", listener.port)
    writer.writemessage(hl7.parse(message("A1", "LIS|ANY")))  # MSH-3 alone matches
    writer.writemessage(hl7.parse(message("A2", "OTHER|HOSP")))
    writer.writemessage(hl7.parse(message("A3", "LIS|HOSP")))  # after the refused one: never read
    async with asyncio.timeout(TIMEOUT):
        ok, refused = await reader.readmessage(), await reader.readmessage()
    assert [str(a.segment("MSA")[1]) for a in (ok, refused)] == ["AA", "AR"]
    assert str(refused.segment("MSA")[2]) == "A2" and "not allowed" in str(refused.segment("ERR")[8])
    assert await eof(reader)
    writer.close()
    stored = await rows(pg_db)
    assert [(r["control_id"], r["status"]) for r in stored] == [("A1", "accepted"), ("A2", "rejected")]
    assert stored[1]["reason"].startswith("sender_not_allowed")
    await listener.close()
    assert [(r.reason, r.count) for r in collected] == [("app_not_allowed", 1)]


async def test_connection_limits_per_source_and_in_total(listener_with: Start, collected: list[Refusal]) -> None:
    listener = await listener_with(max_per_source=2, max_connections=3)
    open_ = [await open_hl7_connection("127.0.0.1", listener.port) for _ in range(2)]
    for r, w in open_:  # both work
        w.writemessage(hl7.parse(message(f"L{id(w)}")))
        async with asyncio.timeout(TIMEOUT):
            assert str((await r.readmessage()).segment("MSA")[1]) == "AA"
    third_r, third_w = await open_hl7_connection("127.0.0.1", listener.port)
    assert await eof(third_r)  # over the per-source limit: closed before anything is read
    third_w.close()
    open_[0][1].close()
    await until(lambda: listener.open_connections == 1, "the listener sees the close and frees the slot")
    again_r, again_w = await open_hl7_connection("127.0.0.1", listener.port)
    again_w.writemessage(hl7.parse(message("L-again")))
    async with asyncio.timeout(TIMEOUT):
        assert str((await again_r.readmessage()).segment("MSA")[1]) == "AA"
    again_w.close()
    open_[1][1].close()
    await listener.close()
    assert [(r.reason, r.count) for r in collected] == [("too_many_connections_from_source", 1)]


async def test_a_dripping_frame_cannot_hold_the_connection(listener_with: Start) -> None:
    """The old idle timer restarted on every byte: one byte per second kept a connection forever."""
    listener = await listener_with(frame_timeout=0.5, idle_timeout=300.0)
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    payload = b"\x0b" + message("D1").encode()

    async def drip() -> None:
        for byte in payload:
            writer.write(bytes([byte]))
            await asyncio.sleep(0.05)

    dripping = asyncio.create_task(drip())
    assert await eof(reader)
    dripping.cancel()
    writer.close()
    assert listener.stats.timeouts == 1 and listener.stats.messages == 0


async def test_newlines_between_frames_do_not_reset_the_idle_timeout(listener_with: Start) -> None:
    listener = await listener_with(idle_timeout=0.5)
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)

    async def drip() -> None:
        while True:
            writer.write(b"\n")
            await asyncio.sleep(0.05)

    dripping = asyncio.create_task(drip())
    assert await eof(reader)
    dripping.cancel()
    writer.close()
    assert listener.stats.timeouts == 1


def test_accept_errors_are_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.asyncio.accept")
    f = AcceptErrorFilter(interval_s=3600)
    logger.addFilter(f)
    try:
        with caplog.at_level(logging.ERROR, logger="test.asyncio.accept"):
            for _ in range(1000):
                logger.error(ACCEPT_ERROR)
            logger.error("something else")
    finally:
        logger.removeFilter(f)
    assert [r.getMessage() for r in caplog.records] == [ACCEPT_ERROR, "something else"]
    assert f.suppressed == 999


async def test_refusals_from_many_sources_stay_bounded() -> None:
    batches: list[list[Refusal]] = []

    async def sink(batch: list[Refusal]) -> None:
        batches.append(batch)

    r = Refusals(sink, interval_s=3600, max_keys=4)
    for i in range(1000):
        r.refuse("sender_not_allowed", f"10.0.{i // 256}.{i % 256}")
    await r.close()
    assert len(batches) == 1 and len(batches[0]) == 5
    assert sum(x.count for x in batches[0]) == 1000 and batches[0][-1].source == "*"


async def test_start_bytes_and_garbage_do_not_count_as_progress(listener_with: Start) -> None:
    """A client sending VT + junk over and over completes no message: the frame timeout still ends it."""
    listener = await listener_with(frame_timeout=0.5, idle_timeout=300.0)
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)

    async def drip() -> None:
        while True:
            writer.write(b"x\x0b")
            await asyncio.sleep(0.05)

    dripping = asyncio.create_task(drip())
    assert await eof(reader)
    dripping.cancel()
    writer.close()
    assert listener.stats.timeouts == 1 and listener.stats.messages == 0
