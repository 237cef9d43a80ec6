"""MllpSender against the HIS simulator: typed failures, and a lost ACK answered by resending the same bytes."""

from __future__ import annotations

import pytest

from cloud.mllp.client import MllpSender
from cloud.mllp.errors import AckTimeout, NegativeAck, PeerUnavailable
from firmware_sim.his import Faults, HisReceiver
from protocol import codes
from protocol.hl7.oru import VitalsReport, build_vitals_oru
from protocol.model import Observation, Reading, Subject

T0 = 1_790_000_000_000


def vitals(i: int) -> bytes:
    bp = Reading(at=T0 + i * 1000, device_id="bp-1", station_id="s1", kind="blood_pressure", observations=(
        Observation(code=codes.SYSTOLIC, value=110 + i % 40, unit="mm[Hg]", flag="N"),
        Observation(code=codes.DIASTOLIC, value=70 + i % 20, unit="mm[Hg]", flag="N")))
    return build_vitals_oru(VitalsReport(
        control_id=f"MCHV{i:012d}", session_id=f"session-{i}", readings=(bp,), created_at=T0 + i * 1000 + 500,
        subject=Subject(national_id="11010519491231002X", name="王秀英", mrn=f"M{i:05d}")))


async def test_sender_errors_are_typed() -> None:
    his = HisReceiver(Faults(error=1.0))
    port = await his.start()
    async with MllpSender("127.0.0.1", port) as sender:
        with pytest.raises(NegativeAck) as err:
            await sender.send(vitals(1))
    assert err.value.code == "AE" and not err.value.retryable and "not registered" in err.value.reason
    await his.close()
    async with MllpSender("127.0.0.1", port, connect_timeout=1, attempts=2, retry_delay=0) as sender:
        with pytest.raises(PeerUnavailable):
            await sender.send(vitals(1))
    silent = HisReceiver(Faults(drop_before=1.0))
    port = await silent.start()
    async with MllpSender("127.0.0.1", port, attempts=2, retry_delay=0) as sender:
        with pytest.raises(AckTimeout):
            await sender.send(vitals(1))
    assert silent.accepted == {} and len(silent.receipts) == 2
    await silent.close()


async def test_a_lost_ack_is_answered_by_resending_the_same_control_id() -> None:
    his = HisReceiver(Faults(drop_after=1.0))  # records the message, then hangs up without an ACK
    port = await his.start()
    async with MllpSender("127.0.0.1", port, attempts=2, retry_delay=0) as sender:
        ack = await sender.send(vitals(1))
        assert sender.sent_frames == 2
    assert ack.code == "AA" and his.receipts == ["MCHV000000000001"] * 2 and list(his.accepted) == ["MCHV000000000001"]
    await his.close()
