"""The sync client's HTTP/1.1 POSTs (edge/http_post.py) against a real socket server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from edge.http_post import HttpError, Poster


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length"))
    return await reader.readexactly(length)


class Server:
    def __init__(self) -> None:
        self.connections = 0
        self.bodies: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def start(self, answer: Callable[[int], bytes], close_after: int = 0) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            served = 0
            try:
                while True:
                    self.bodies.append(await read_request(reader))
                    writer.write(answer(len(self.bodies)))
                    await writer.drain()
                    served += 1
                    if served == close_after:  # a keep-alive timeout: closed while the client keeps it idle
                        break
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/api/v1/batches"


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    s = Server()
    yield s
    if s.server is not None:
        s.server.close()


def chunked(n: int) -> bytes:
    return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Mchub-Config-Version: 3\r\n\r\n"
            + b"4\r\nack-\r\n" + f"{len(str(n)):x}\r\n{n}\r\n0\r\n\r\n".encode())


async def test_answers_are_read_whole_and_one_connection_is_reused(server: Server) -> None:
    poster = Poster(await server.start(chunked), timeout_s=5)
    sent: list[int] = []
    for i in range(1, 4):
        answer = await poster.post(b"batch-%d" % i, {"Content-Type": "application/vnd.mchub.batch"},
                                   sent=lambda: sent.append(1))
        assert (answer.status, answer.body, answer.headers["x-mchub-config-version"]) == (200, b"ack-%d" % i, "3")
    await poster.close()
    assert server.bodies == [b"batch-1", b"batch-2", b"batch-3"] and len(sent) == 3
    assert server.connections == 1


async def test_a_connection_the_server_closed_while_idle_is_replaced_not_reported(server: Server) -> None:
    poster = Poster(await server.start(lambda n: b"HTTP/1.1 503 Busy\r\nRetry-After: 2\r\nContent-Length: 0\r\n\r\n",
                                       close_after=1), timeout_s=5)
    for _ in range(3):
        answer = await poster.post(b"x", {})
        assert (answer.status, answer.headers["retry-after"]) == (503, "2")
        await asyncio.sleep(0.05)  # the server's close arrives while the connection sits idle
    await poster.close()
    assert server.connections == 3 and len(server.bodies) == 3


async def test_garbage_and_an_early_close_are_errors_and_a_silent_server_times_out(server: Server) -> None:
    poster = Poster(await server.start(lambda n: b"SPAM\r\n\r\n" if n == 1 else b""), timeout_s=0.5)
    with pytest.raises(HttpError):
        await poster.post(b"x", {})
    with pytest.raises((HttpError, TimeoutError)):  # the server never answers the second
        await poster.post(b"y", {})


def test_only_http_urls() -> None:
    with pytest.raises(ValueError):
        Poster("ftp://example.cn/x", timeout_s=1)
