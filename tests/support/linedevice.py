"""The device side of ``tests.support.hubdriver``: a TCP server in its own thread.

It sends readings 1..total (a card line every ``card_every`` readings), keeps at most
``window`` unacknowledged on the wire, and after a reconnect resends everything not yet
acknowledged — the way a real device with memory behaves when the hub restarts.

A test whose scenario has phases (outages, faults) needs readings flowing through every
phase however slowly a loaded machine gets through them: it starts the device with
``total=None`` (measure until told) and calls :meth:`LineDevice.finish` after the last phase,
instead of guessing how many readings the phases take.
"""

from __future__ import annotations

import asyncio
import random
import threading


def reading_line(n: int) -> bytes:
    """The line for reading n (values derived from n, so the cloud side can check them)."""
    return b"R %d %d %d %d\n" % (n, 100 + n % 80, 60 + n % 40, 55 + n % 50)


class LineDevice:
    """Simulated device; ``acked`` holds the numbers the hub has confirmed."""

    def __init__(self, total: int | None, window: int = 64, card_every: int = 0, rate: float = 0.0,
                 bad: frozenset[int] = frozenset()) -> None:
        self.total = total if total is not None else 1 << 62  #: until :meth:`finish`
        self.window, self.card_every, self.rate = window, card_every, rate
        self.sent = 0  #: the highest number sent so far
        self.bad = bad  #: numbers sent as a reading with a value the cloud refuses (code ``mchub-no-such-code``)
        self.acked: set[int] = set()
        self.connections = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.done = threading.Event()

    def start(self) -> LineDevice:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    def finish(self) -> int:
        """Send nothing past what was already sent (the end of an open-ended run); returns the total."""
        async def cap() -> int:
            self.total = max(self.sent, 1)
            if len(self.acked) >= self.total:
                self.done.set()
            return self.total

        return asyncio.run_coroutine_threadsafe(cap(), self._loop).result(10)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _listen(self) -> None:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]

    def line(self, n: int) -> bytes:
        if self.card_every and n % self.card_every == 0:
            return b"C %d 11010519491231002X\n" % n
        if n in self.bad:
            return b"X %d %d mchub-no-such-code 1 1\n" % (n, 100 + n % 80)
        return reading_line(n)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        inflight: set[int] = set()
        room = asyncio.Event()
        room.set()

        async def receive() -> None:
            while line := await reader.readline():
                n = int(line.split()[1])
                self.acked.add(n)
                inflight.discard(n)
                room.set()
                if len(self.acked) >= self.total:
                    self.done.set()

        rx = asyncio.create_task(receive())
        try:
            n = 0
            while n < self.total:  # read each time: :meth:`finish` may lower it
                n += 1
                if n in self.acked:
                    continue
                while len(inflight) >= self.window:
                    room.clear()
                    await asyncio.wait([asyncio.ensure_future(room.wait()), rx], return_when=asyncio.FIRST_COMPLETED)
                    if rx.done():
                        return
                if n > self.total:  # finished while waiting for room
                    break
                inflight.add(n)
                self.sent = max(self.sent, n)
                writer.write(self.line(n))
                await writer.drain()
                if self.rate:
                    await asyncio.sleep(random.expovariate(self.rate))
            await rx
        except (ConnectionError, OSError):
            pass
        finally:
            rx.cancel()
            writer.close()
