"""Issue 16 (HL7 side) through third-party clients over real sockets, against the real listener.

Clients: python-hl7's asyncio MLLP client (``hl7.mllp.open_hl7_connection``), its blocking
``hl7.client.MLLPClient`` and its ``mllp_send`` command; ACKs are also read with hl7apy's
parser. Each test names the finding it covers; each fails on the code before the fix
(finding 2: the reused id was answered "duplicate" and dropped; 3: MSA-2 empty; 4: AR;
5: three answers to one frame; 7: AR unsupported type).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import hl7
import pytest
from hl7.client import MLLPClient
from hl7.mllp import open_hl7_connection
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from cloud.db.engine import Database
from cloud.integration.inbound import Hl7Processor
from cloud.mllp.db_store import Hl7Store
from cloud.mllp.server import ListenerConfig, MllpListener
from firmware_sim.his import fixture_messages, lab_message
from tests.cloud.mllp.conftest import FIXTURES, at_rest, rows
from tests.protocol.hl7.test_oul import OUL_R22

pytestmark = pytest.mark.postgres

TIMEOUT = 30.0  #: generous bound on every read; a healthy exchange takes milliseconds


def mindray(cid: str, wbc: str, sample: str = "S1") -> str:
    """A Mindray BC-series style result: empty MSH-3/MSH-4, a small MSH-10 counter, MSH-18 UNICODE."""
    return (f"MSH|^~\\&|||||20260301101010||ORU^R01|{cid}|P|2.3.1||||||UNICODE\r"
            f"PID|1||M000001^^^HOSP^MR||王^秀英\r"
            f"OBR|1||{sample}|00001^Automated Count^99MRC\r"
            f"OBX|1|NM|6690-2^WBC^LN||{wbc}|10*9/L|3.5-9.5|N|||F\r")


class Peer:
    """python-hl7's asyncio MLLP client on one connection."""

    def __init__(self, reader: hl7.mllp.HL7StreamReader, writer: hl7.mllp.HL7StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, text: str) -> hl7.Message:
        self.writer.writemessage(hl7.parse(text))
        await self.writer.drain()
        return await self.answer()

    async def answer(self) -> hl7.Message:
        async with asyncio.timeout(TIMEOUT):
            return await self.reader.readmessage()

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def connect(listener: MllpListener) -> Peer:
    reader, writer = await open_hl7_connection("127.0.0.1", listener.port, encoding="utf-8")
    return Peer(reader, writer)


@pytest.fixture
async def peer(pg_listener: MllpListener) -> AsyncIterator[Peer]:
    p = await connect(pg_listener)
    yield p
    await p.close()


def msa(ack: hl7.Message) -> tuple[str, str]:
    return str(ack.segment("MSA")[1]), str(ack.segment("MSA")[2])


# --- finding 2: duplicates by content, not by counter -----------------------------------------

async def test_a_reused_control_id_with_new_content_is_stored_and_a_true_resend_is_not(
        pg_store: Hl7Store, pg_db: Database) -> None:
    first, second, third = mindray("1", "6.5"), mindray("1", "7.1", "S2"), mindray("1", "5.0", "S3")
    async with MllpListener(pg_store, ListenerConfig(host="127.0.0.1", port=0)) as listener:
        p = await connect(listener)
        assert msa(await p.send(first)) == ("AA", "1")
        again = await p.send(first.replace("\r", "\n"))  # the same message resent with LF endings
        assert msa(again) == ("AA", "1") and "duplicate" in str(again.segment("MSA")[3])
        new = await p.send(second)  # the analyser restarted its counter: a new result under id 1
        assert msa(new) == ("AA", "1") and "duplicate" not in str(new)
        await p.close()
        assert listener.stats.reused == 1 and listener.stats.duplicates == 1
    async with MllpListener(pg_store, ListenerConfig(host="127.0.0.1", port=0)) as listener:  # restarted
        p = await connect(listener)
        assert "duplicate" in str(await p.send(second))
        assert "duplicate" not in str(await p.send(third))
        await p.close()
    stored = await rows(pg_db, "status = 'accepted'")
    assert [r["sender"] for r in stored] == ["|"] * 3
    assert [r["control_id_reused"] for r in stored] == [False, True, True]
    assert [r["duplicates"] for r in stored] == [1, 1, 0]
    processor = Hl7Processor(pg_db, pg_store, at_rest())
    assert await processor.run_once() == 3
    async with pg_db.transaction() as tx:
        values = [r["value"] for r in await tx.fetch("SELECT value FROM results WHERE origin LIKE 'hl7:%' ORDER BY id")]
    assert values == ["6.5", "7.1", "5.0"]


async def test_rows_from_before_migration_13_are_upgraded_and_still_catch_resends(
        pg_store: Hl7Store, pg_db: Database) -> None:
    legacy = mindray("9", "4.4").encode()
    async with pg_db.transaction() as tx:  # a row as the old store wrote it: key = sender + MSH-10
        await tx.execute("INSERT INTO hl7_inbound (uid, received_ms, peer, sender, control_id, message_type, "
                         "status, ack_code, dedup_key, control_key, raw) VALUES ('old', 1, 'p', '|', '9', "
                         "'ORU^R01', 'accepted', 'AA', $1, $1, $2)", "|\x1f9", legacy)
    assert await pg_store.upgrade_keys() == 1
    assert await pg_store.upgrade_keys() == 0
    async with MllpListener(pg_store, ListenerConfig(host="127.0.0.1", port=0)) as listener:
        p = await connect(listener)
        assert "duplicate" in str(await p.send(legacy.decode()))
        assert "duplicate" not in str(await p.send(mindray("9", "4.5")))
        await p.close()
    assert [r["uid"] == "old" or r["control_id_reused"] for r in await rows(pg_db)] == [True, True]


# --- finding 3: every ACK echoes MSH-10 --------------------------------------------------------

@pytest.mark.parametrize(("case", "text", "code"), [
    ("bad segment name", "MSH|^~\\&|LIS|HOSP|||20260301||ORU^R01|E-1|P|2.5.1\rPID|||9^^^H^MR\rOBR|1\rzz|x\r", "AE"),
    ("version 3", "MSH|^~\\&|LIS|HOSP|||20260301||ORU^R01|E-2|P|3.0\rPID|||9^^^H^MR\r", "AR"),
    ("unsupported type", "MSH|^~\\&|LIS|HOSP|||20260301||QRY^Q01|E-3|P|2.5.1\r", "AR"),
])
async def test_error_acks_echo_the_control_id_and_the_log_row_keeps_the_header(
        peer: Peer, pg_db: Database, case: str, text: str, code: str) -> None:
    raw = text.encode()
    peer.writer.writeblock(raw)  # as sent: python-hl7 would not build these messages itself
    ack = await peer.answer()
    cid = text.split("|")[9]
    assert msa(ack) == (code, cid), case
    assert ack.segment("ERR")
    ref = parse_message(str(ack).replace("\n", "\r"), validation_level=VALIDATION_LEVEL.TOLERANT)  # hl7apy reads it
    assert ref.msa.msa_2.value == cid
    row = (await rows(pg_db, f"control_id = '{cid}'"))[0]
    assert (row["sender"], row["message_type"], row["ack_code"]) == (
        "LIS|HOSP", "QRY^Q01" if case == "unsupported type" else "ORU^R01", code)


async def test_an_oversized_message_is_answered_with_its_control_id(pg_store: Hl7Store, pg_db: Database) -> None:
    big = mindray("BIG-1", "6.5") + "NTE|1||" + "x" * 2000 + "\r"
    async with MllpListener(pg_store, ListenerConfig(host="127.0.0.1", port=0, max_size=256)) as listener:
        p = await connect(listener)
        assert msa(await p.send(big)) == ("AR", "BIG-1")
        assert msa(await p.send(mindray("SMALL-1", "6.5"))) == ("AA", "SMALL-1")  # still in step
        await p.close()
    row = (await rows(pg_db, "status = 'oversized'"))[0]
    assert (row["sender"], row["control_id"], row["message_type"]) == ("|", "BIG-1", "ORU^R01")


async def test_a_message_sent_without_its_start_byte_is_kept_as_garbage_with_its_header(
        peer: Peer, pg_db: Database) -> None:
    peer.writer.write(mindray("NOVT-1", "6.5").encode() + b"\x1c\r")  # no VT: not a frame, so no answer
    assert msa(await peer.send(mindray("NEXT-1", "6.5"))) == ("AA", "NEXT-1")
    [row] = await rows(pg_db, "status = 'garbage'")
    assert (row["control_id"], row["message_type"], row["ack_code"]) == ("NOVT-1", "ORU^R01", "")


# --- finding 4: character sets ------------------------------------------------------------------

async def test_unicode_is_accepted_and_an_unknown_charset_is_an_ae_naming_it(pg_listener: MllpListener) -> None:
    def exchange() -> list[bytes]:
        with MLLPClient("127.0.0.1", pg_listener.port) as client:  # python-hl7's blocking client
            client.socket.settimeout(TIMEOUT)
            return [client.send_message(mindray("U1", "6.5").encode()),
                    client.send_message(mindray("U2", "6.5").replace("UNICODE", "EBCDIC").encode())]
    ok, unknown = (hl7.parse(a.strip(b"\x0b\x1c\r").decode()) for a in await asyncio.to_thread(exchange))
    assert msa(ok) == ("AA", "U1")
    assert msa(unknown) == ("AE", "U2")
    assert "EBCDIC" in str(unknown.segment("ERR")[8]) and str(unknown.segment("ERR")[3][0][0]) == "103"


# --- finding 5: one answer per frame -------------------------------------------------------------

async def test_one_garbage_frame_gets_exactly_one_answer_and_the_connection_stays_in_step(
        peer: Peer, pg_listener: MllpListener) -> None:
    peer.writer.writeblock(b"\x00junk\x1c\x0bjunk\x1c\x0bjunk\x1cmore")  # one VT ... FS CR with stray VT/FS inside
    refused = await peer.answer()
    assert msa(refused) == ("AR", "")
    for i in range(3):  # every later answer is for the message just sent
        assert msa(await peer.send(mindray(f"S{i}", "6.5"))) == ("AA", f"S{i}")
    assert pg_listener.stats.messages == 4


# --- finding 7: OUL^R22 ---------------------------------------------------------------------------

async def test_oul_r22_is_accepted_and_its_results_are_stored(peer: Peer, pg_db: Database, pg_store: Hl7Store) -> None:
    assert msa(await peer.send(OUL_R22)) == ("AA", "R22-1")
    assert await Hl7Processor(pg_db, pg_store, at_rest()).run_once() == 1
    async with pg_db.transaction() as tx:
        codes = [r["code"] for r in await tx.fetch("SELECT code FROM results WHERE origin LIKE 'hl7:%' ORDER BY id")]
    assert len(codes) == 3  # two HPV types and the WBC; the specimen's own OBX is not a result


# --- the fixtures through python-hl7's mllp_send command -----------------------------------------

EXPECTED = {  #: file -> (MSA-1, MSA-2) as listed in docs/hl7.md
    "ADT04-251.hl7": ("AA", "401"),
    "LAB-ORU-1.hl7": ("AA", "182"),
    "LRI_2.0-NG_CBC_Typ_Message.hl7": ("CA", "NIST-LRI-NG-002.00"),
    "python-hl7-sample.hl7": ("AE", "CNTRL-3456"),
}


async def test_mllp_send_gets_the_documented_answer_for_every_fixture(pg_listener: MllpListener,
                                                                      tmp_path: Path) -> None:
    messages = {**fixture_messages(FIXTURES), **fixture_messages(FIXTURES / "other")}
    names = sorted(n for n in messages if n in EXPECTED)
    assert set(EXPECTED) <= set(messages)
    blob = tmp_path / "all.hl7"
    blob.write_bytes(b"\n".join(messages[n].replace(b"\r", b"\n") for n in names) + lab_message(1))
    mllp_send = Path(sys.executable).parent / "mllp_send"
    out = await asyncio.to_thread(subprocess.run, [str(mllp_send), "--loose", "-f", str(blob), "-p",
                                                   str(pg_listener.port), "127.0.0.1"],
                                  capture_output=True, timeout=TIMEOUT, check=True)
    answers = [hl7.parse(a.strip(b"\x0b\r\n").decode()) for a in out.stdout.split(b"\x1c\r") if a.strip()]
    assert [msa(a) for a in answers] == [*(EXPECTED[n] for n in names), ("AA", "LIS00000001")]
