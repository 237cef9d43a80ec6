"""The fault proxy used by network-fault tests does what it says."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from firmware_sim.netfaults import FaultProxy, Mode
from tests.support.waiting import HANG_S


@contextlib.asynccontextmanager
async def echo_server():  # type: ignore[no-untyped-def]
    async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await r.read(4096):
                w.write(data)
                await w.drain()
        w.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def roundtrip(port: int, payload: bytes, limit: float = HANG_S) -> bytes:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(payload)
        await w.drain()
        return await asyncio.wait_for(r.readexactly(len(payload)), limit)
    finally:
        w.close()


async def test_healthy_proxy_forwards_both_ways() -> None:
    async with echo_server() as port:
        proxy = await FaultProxy(port).start()
        assert await roundtrip(proxy.port, b"hello" * 100) == b"hello" * 100
        assert proxy.stats.upstream_bytes == 500 and proxy.stats.downstream_bytes == 500
        await proxy.stop()


async def test_reset_after_n_bytes_breaks_the_connection() -> None:
    async with echo_server() as port:
        proxy = await FaultProxy(port, mode=Mode(reset_after=100)).start()
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await roundtrip(proxy.port, b"x" * 1000)
        assert proxy.stats.resets == 1
        proxy.mode = Mode()
        assert await roundtrip(proxy.port, b"ok") == b"ok"  # healthy again for new connections
        await proxy.stop()


@pytest.mark.parametrize("mode", [Mode(black_hole=True), Mode(half_open=True)])
async def test_black_hole_and_half_open_never_answer(mode: Mode) -> None:
    async with echo_server() as port:
        proxy = await FaultProxy(port, mode=mode).start()
        with pytest.raises(asyncio.TimeoutError):
            await roundtrip(proxy.port, b"ping", limit=0.3)
        await proxy.stop()


async def test_refuse_closes_new_connections() -> None:
    async with echo_server() as port:
        proxy = await FaultProxy(port, mode=Mode(refuse=True)).start()
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await roundtrip(proxy.port, b"ping")
        await proxy.stop()
