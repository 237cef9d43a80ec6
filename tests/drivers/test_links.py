"""Byte links stop when cancelled, even while the device is talking (issue 19 finding 1).

The root cause of "a cloud device-list change left 4 of a hub's 6 devices dead": on
Python 3.11 ``asyncio.wait_for`` swallows a cancellation that arrives in the same loop
turn in which the awaited future completes. ``SerialLink.read`` waited on "the port is
readable" with ``wait_for``; an ID-card reader polling every 0.3 s almost always had an
answer arriving, so the supervisor's cancel was lost, its ``gather`` never returned, the
reload never finished, and the serial stations it had already stopped never restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from drivers.links import SerialLink, TcpLink
from tests.support.pty import PtyPair

ROUNDS = 200
TURNS = 100  #: loop turns a cancelled read may take to finish (it needs one or two): counted, not timed
GUARD = 60.0  #: a hung test fails; never a timing assertion


async def _cancel_while_busy(link: SerialLink | TcpLink, feed: asyncio.Task[None]) -> int:
    """Start a reading task, cancel it after a few loop turns, ROUNDS times; returns how many ignored the cancel."""
    async def reader() -> None:
        while True:
            await link.read(0.1)

    ignored = 0
    for i in range(ROUNDS):
        task = asyncio.create_task(reader())
        for _ in range(i % 7 + 1):
            await asyncio.sleep(0)
        task.cancel()
        for _ in range(TURNS):  # loop turns, not seconds: a busy machine slows the clock, not the loop's order
            if task.done():
                break
            await asyncio.sleep(0)
        if not task.done():
            ignored += 1
            feed.cancel()  # silence the device, then the next cancel lands
            for _ in range(100):
                task.cancel()
                await asyncio.sleep(0.01)
                if task.done():
                    break
            break
    feed.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await feed
    return ignored


async def test_a_serial_read_is_cancelled_even_when_bytes_arrive_at_the_same_moment(pty_pair: PtyPair) -> None:
    link = SerialLink(pty_pair.device, 115200)
    os.set_blocking(pty_pair.master, False)

    async def flood() -> None:
        while True:
            with contextlib.suppress(BlockingIOError):
                os.write(pty_pair.master, b"\xaa" * 8)
            await asyncio.sleep(0)

    try:
        assert await _cancel_while_busy(link, asyncio.create_task(flood())) == 0
    finally:
        link.close()


async def test_a_tcp_read_is_cancelled_even_when_bytes_arrive_at_the_same_moment() -> None:
    writers: list[asyncio.StreamWriter] = []
    accepted = asyncio.Event()

    async def serve(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        accepted.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    link = await TcpLink.connect("127.0.0.1", port)
    await asyncio.wait_for(accepted.wait(), GUARD)

    async def flood() -> None:
        while True:
            writers[0].write(b"\xaa" * 8)
            await writers[0].drain()
            await asyncio.sleep(0)

    try:
        assert await _cancel_while_busy(link, asyncio.create_task(flood())) == 0
    finally:
        link.close()
        writers[0].close()
        server.close()
        await server.wait_closed()
