"""The cloud corrects and resends (or dismisses) a record it refused: signed commands over a real broker."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomqtt
import msgspec
import pytest

from edge.store import reader as q
from protocol.commands import CommandBody, CommandReply, sign_command, topic
from protocol.ids import now_ms, uuid7
from protocol.model import Reading
from tests.edge.conftest import make_hub_dir
from tests.edge.hubkit import add_readings, started
from tests.support.refcloud import RefCloud
from tests.support.services import MosquittoServer
from tests.support.waiting import HANG_S

HUB = "clinic-dl"  #: its own hub id: the broker keeps each hub's retained status for the other tests


def command(cloud: RefCloud, name: str, **args: str) -> bytes:
    body = CommandBody(id=uuid7(), hub_id=HUB, name=name, issued_ms=now_ms(),  # type: ignore[arg-type]
                       expires_ms=now_ms() + 60_000, args=args)
    return sign_command(body, cloud.signing)


@pytest.mark.mqtt
async def test_the_cloud_resends_a_refused_reading_without_a_value_and_dismisses_another(
        tmp_path: Path, refcloud: RefCloud, mosquitto: MosquittoServer) -> None:
    cfg = make_hub_dir(tmp_path / "hub", refcloud, hub_id=HUB, stations='[[stations]]\nid = "room-1"\n'
                       f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\ntelemetry_interval_s = 0.2\n')
    hub = await started(cfg)
    try:
        seqs = await add_readings(hub, range(1, 3))
        await hub.writer.call(q.store_ack(seqs[1], b"ack", now_ms(), ((seqs[0], "unknown_code"),
                                                                        (seqs[1], "unknown_code"))))
        assert (await hub.telemetry()).dead_letters_open == 2  # what the cloud dashboard shows per hub
        replies: list[CommandReply] = []
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="test-cloud-dl") as cloud:
            await cloud.subscribe(topic(HUB, "replies"), qos=1)  # acknowledged by the broker: no sleep needed
            for payload in (command(refcloud, "resend-dead-letter", seq=str(seqs[0]), drop="8867-4", by="ops"),
                            command(refcloud, "dismiss-dead-letter", seq=str(seqs[1]), by="ops"),
                            command(refcloud, "resend-dead-letter", seq=str(seqs[1]))):
                await cloud.publish(topic(HUB, "commands"), payload, qos=1)
            async with asyncio.timeout(HANG_S):
                async for m in cloud.messages:
                    replies.append(msgspec.json.decode(bytes(m.payload), type=CommandReply))  # type: ignore[arg-type]
                    if len(replies) == 3:
                        break
        by_detail = sorted(r.detail for r in replies)
        assert [r.ok for r in sorted(replies, key=lambda r: r.detail)] == [False, True, True], by_detail
        assert f"resent as seq {seqs[1] + 1}" in by_detail and "dismissed" in by_detail
        assert any("already dealt with" in d for d in by_detail)
        rows = {d["seq"]: d for d in hub.reader.dead_letters()}
        assert rows[seqs[0]]["resolved_by"] == "cloud:ops" and rows[seqs[0]]["resent_seq"] == seqs[1] + 1
        assert rows[seqs[1]]["resolved_by"] == "cloud:ops" and rows[seqs[1]]["resent_seq"] is None
        assert (await hub.telemetry()).dead_letters_open == 0
        resent = hub.reader.records(seqs[1] + 1, 1)[0]
        assert isinstance(resent, Reading) and "8867-4" not in {o.code for o in resent.observations}
    finally:
        await hub.stop()
