"""The HIS simulator on its own: framing, hl7apy validation, dedup and seeded faults."""

from __future__ import annotations

import asyncio

from firmware_sim.his import (
    Faults,
    HisReceiver,
    ack,
    adt_message,
    fields,
    frame,
    lab_message,
    unframe,
    validate_with_hl7apy,
)

VALID_ORU = (b"MSH|^~\\&|MCHUB||HIS||20260101120000+0800||ORU^R01^ORU_R01|MCH000000000001|P|2.5.1\r"
             b"PID|1||M1^^^^MR||X\rOBR|1|s1||85353-1^Vital signs^LN\r"
             b"OBX|1|NM|8480-6^Systolic blood pressure^LN||120|mm[Hg]^mm[Hg]^UCUM|90-139|N|||F\r")


def test_unframe_keeps_partial_frames_for_later() -> None:
    buf = bytearray(b"junk" + frame(b"A") + frame(b"B")[:3])
    assert unframe(buf) == [b"A"]
    buf += frame(b"B")[3:]
    assert unframe(buf) == [b"B"] and buf == bytearray()


def test_ack_echoes_the_control_id() -> None:
    a = ack(VALID_ORU, "AE", "why")
    assert fields(a, "MSA") == ["MSA", "AE", "MCH000000000001", "why"]


def test_hl7apy_validation_accepts_a_vitals_message_and_names_what_is_wrong() -> None:
    assert validate_with_hl7apy(VALID_ORU) is None
    bad = VALID_ORU.replace(b"|P|2.5.1", b"|P|9.9")
    assert validate_with_hl7apy(bad) is not None


def test_generated_messages_are_well_formed_for_hl7apy() -> None:
    for raw in (lab_message(1), adt_message(2, "A04")):
        assert validate_with_hl7apy(raw) is None


async def test_receiver_records_once_and_answers_duplicates_aa() -> None:
    his = HisReceiver(Faults(drop_after=1.0))
    port = await his.start()
    for _ in range(2):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(frame(VALID_ORU))
        data = await reader.read(65536)
        writer.close()
    assert fields(unframe(bytearray(data))[0], "MSA")[1:3] == ["AA", "MCH000000000001"]  # the resend's answer
    assert list(his.accepted) == ["MCH000000000001"] and len(his.receipts) == 2
    await his.close()


async def test_faults_are_repeatable_with_the_same_seed() -> None:
    async def run() -> list[str]:
        his = HisReceiver(Faults(error=0.5, seed=3), validate=False)
        port = await his.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        codes = []
        for i in range(10):
            writer.write(frame(VALID_ORU.replace(b"MCH000000000001", b"MCH%012d" % i)))
            buf = bytearray()
            while not (got := unframe(buf)):
                buf += await reader.read(65536)
            codes.append(fields(got[0], "MSA")[1])
        writer.close()
        await his.close()
        return codes

    first = await run()
    assert first == await run() and {"AA", "AE"} <= set(first)
