"""The ACK a message was answered with is stored with it (migration 16): the same bytes the
sender read off the socket, sealed like the message, bounded; a duplicate's answer is not kept."""

from __future__ import annotations

import pytest

from cloud.db.engine import Database
from cloud.mllp.db_store import ACK_COLUMN, Hl7Store
from cloud.mllp.server import ListenerConfig, MllpListener
from cloud.mllp.store import ACK_STORED_MAX, InboundMeta
from firmware_sim.his import MALFORMED, lab_message, send_messages
from tests.cloud.mllp.conftest import at_rest, rows


@pytest.mark.postgres
async def test_the_stored_ack_is_the_one_sent(pg_db: Database) -> None:
    keys = at_rest()
    store = Hl7Store(pg_db, keys)
    async with MllpListener(store, ListenerConfig(host="127.0.0.1", port=0)) as listener:
        sent = await send_messages("127.0.0.1", listener.port, [lab_message(1), MALFORMED["no PID"], lab_message(1)])
    await store.close()
    stored = await rows(pg_db)
    assert len(stored) == 2 and all(r["sealed"] for r in stored)
    opened = [keys.open_bytes(bytes(r["ack"]), ACK_COLUMN) for r in stored]
    assert [o.rstrip(b"\r") for o in opened] == [a.rstrip(b"\r") for a in sent[:2]]
    assert b"ERR|" in opened[1] and b"MSA|AE|BAD4" in opened[1]
    assert b"duplicate" in sent[2] and b"duplicate" not in opened[0]  # the resend's answer is not stored
    assert b"MSA|AA|LIS00000001" not in bytes(stored[0]["ack"])  # sealed: not in the clear


async def test_the_stored_ack_is_bounded(sqlite_db: Database) -> None:
    store = Hl7Store(sqlite_db)
    await store.store(b"MSH|^~\\&|A|B|C|D|2026||ORU^R01|X1|P|2.5.1\r", InboundMeta(
        received_at=1, peer="p", status="error", ack_code="AE", ack=b"A" * (ACK_STORED_MAX * 3)))
    await store.close()
    (row,) = await rows(sqlite_db)
    assert len(bytes(row["ack"])) == ACK_STORED_MAX
