"""The [mllp] allow-list through the running cloud: settings reach the listener, refusals reach audit_log."""

from __future__ import annotations

import asyncio
from pathlib import Path

import hl7
from hl7.mllp import open_hl7_connection

from tests.cloud.integration.test_e2e import cloud_with, sql
from tests.cloud.support import serving
from tests.support.services import free_port

TIMEOUT = 30.0
MESSAGE = ("MSH|^~\\&|LIS|HOSP|MCHUB|C|20260301||ORU^R01|W-{n}|P|2.5.1\r"
           "PID|||9^^^H^MR\rOBR|1\rOBX|1|NM|718-7^Hb^LN||128|g/L|||||F\r")


async def attempt(port: int, n: int) -> str | None:
    """Send one message with python-hl7's client; MSA-1, or None when the connection is closed unanswered."""
    reader, writer = await open_hl7_connection("127.0.0.1", port)
    try:
        writer.writemessage(hl7.parse(MESSAGE.format(n=n)))
        async with asyncio.timeout(TIMEOUT):
            return str((await reader.readmessage()).segment("MSA")[1])
    except (asyncio.IncompleteReadError, ConnectionResetError):
        return None
    finally:
        writer.close()


async def test_a_cloud_whose_allow_list_leaves_out_loopback_refuses_and_audits_it(tmp_path: Path) -> None:
    port = free_port()
    toml = (f'[mllp]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n'
            'allowed_senders = ["10.1.2.3"]\n')
    cfg, _ = cloud_with(tmp_path, f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}", toml)
    async with serving(cfg):
        assert [await attempt(port, n) for n in range(3)] == [None, None, None]
    rows = await sql(cfg, "SELECT actor, reason, detail FROM audit_log WHERE action = 'mllp.refused'")
    assert [(r["actor"], r["reason"]) for r in rows] == [("mllp:127.0.0.1", "sender_not_allowed")]
    assert '"count":3' in rows[0]["detail"]
    assert await sql(cfg, "SELECT uid FROM hl7_inbound") == []


async def test_the_same_cloud_with_loopback_listed_answers(tmp_path: Path) -> None:
    port = free_port()
    toml = (f'[mllp]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n'
            'allowed_senders = ["10.1.2.3", "127.0.0.0/8"]\nallowed_apps = ["LIS"]\n')
    cfg, _ = cloud_with(tmp_path, f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}", toml)
    async with serving(cfg):
        assert await attempt(port, 1) == "AA"
