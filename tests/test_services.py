"""The throwaway PostgreSQL and Mosquitto really run (so later suites can rely on them)."""

from __future__ import annotations

import asyncio

import aiomqtt
import asyncpg

from tests.support.services import MosquittoServer
from tests.support.waiting import HANG_S


async def test_postgres_accepts_queries(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await conn.fetchval("select 40 + 2") == 42
    finally:
        await conn.close()


async def test_mosquitto_round_trip(mosquitto: MosquittoServer) -> None:
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as sub, aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
        await sub.subscribe("mchub/test")
        await pub.publish("mchub/test", b"hello", qos=1)
        message = await asyncio.wait_for(anext(aiter(sub.messages)), HANG_S)
        assert message.payload == b"hello"


def test_pty_pair_carries_bytes(pty_pair) -> None:  # type: ignore[no-untyped-def]
    import os

    import serial

    port = serial.Serial(pty_pair.device, 115200, timeout=1)
    try:
        os.write(pty_pair.master, b"\xaa\xaa\xaa\x96\x69")
        assert port.read(5) == b"\xaa\xaa\xaa\x96\x69"
    finally:
        port.close()
