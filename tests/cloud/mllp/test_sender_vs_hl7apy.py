"""Our MllpSender against a third-party receiver: hl7apy's MLLPServer (one message per connection).

hl7apy's server reads one frame, answers and closes the connection, as some HIS interfaces
do. The sender must notice the closed connection and deliver every message, each answered
for its own MSH-10; the receiver parses our vitals ORU^R01 with hl7apy.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.mllp import AbstractHandler, MLLPServer
from hl7apy.parser import parse_message

from cloud.mllp.client import MllpSender
from tests.cloud.mllp.test_client import vitals

RECEIVED: list[str] = []


class AckHandler(AbstractHandler):
    """Parse with hl7apy (strict about structure), answer AA echoing MSH-10."""

    def reply(self) -> str:
        m = parse_message(self.incoming_message, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=True)
        cid = m.msh.msh_10.value
        RECEIVED.append(cid)
        return ("\x0bMSH|^~\\&|HIS|HOSP|MCHUB||20260301||ACK^R01^ACK|A" + cid + "|P|2.5.1\r"
                "MSA|AA|" + cid + "\r\x1c\r")


@pytest.fixture
def hl7apy_server() -> Iterator[int]:
    server = MLLPServer("127.0.0.1", 0, {"ORU^R01^ORU_R01": (AckHandler,)}, timeout=10)  # keyed by MSH-9 as sent
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(10)


async def test_every_message_reaches_hl7apy_and_is_acknowledged_for_its_own_id(hl7apy_server: int) -> None:
    RECEIVED.clear()
    messages = [vitals(i) for i in range(5)]
    async with MllpSender("127.0.0.1", hl7apy_server, ack_timeout=10, attempts=3, retry_delay=0) as sender:
        acks = [await sender.send(m) for m in messages]
    ids = [f"MCHV{i:012d}" for i in range(5)]
    assert [a.control_id for a in acks] == ids and all(a.accepted for a in acks)
    assert sorted(set(RECEIVED)) == ids  # a resend after a closed connection may arrive twice; none is missing
