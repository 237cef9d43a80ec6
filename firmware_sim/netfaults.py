"""A TCP proxy that misbehaves on command: the network between hub and cloud, or a
device's link (the one fault relay of the project; ``mchub sim netfault`` runs it alone).

    proxy = FaultProxy(target_port=cloud_port)
    await proxy.start()                    # listen on 127.0.0.1:proxy.port
    proxy.mode = Mode(latency=0.2)         # every chunk delayed 200 ms
    proxy.mode = Mode(bandwidth=20_000)    # bytes/s cap, each direction
    proxy.mode = Mode(reset_after=5_000)   # RST each connection after 5 kB upstream
    proxy.mode = Mode(black_hole=True)     # accept, read, never forward or answer
    proxy.mode = Mode(half_open=True)      # forward upstream, silently drop the answers
    proxy.mode = Mode(refuse=True)         # close new connections at once
    proxy.mode = Mode()                    # healthy again
    await proxy.cut()                      # a cable pulled and plugged back: reset every connection
    await proxy.stop()

    async with FaultProxy(broker_port) as link:   # start/stop as a context manager
        ...

Only loopback addresses are ever used. Changing ``mode`` affects new chunks at once and
new connections; ``reset_all()`` kills every live connection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass, field
from types import TracebackType


@dataclass(frozen=True)
class Mode:
    """How the proxy treats traffic right now."""

    latency: float = 0.0
    bandwidth: float | None = None
    reset_after: int | None = None
    black_hole: bool = False
    half_open: bool = False
    refuse: bool = False


@dataclass
class Stats:
    """What passed through."""

    connections: int = 0
    upstream_bytes: int = 0
    downstream_bytes: int = 0
    resets: int = 0
    cuts: int = 0


@dataclass
class FaultProxy:
    """The proxy; see the module docstring."""

    target_port: int
    target_host: str = "127.0.0.1"
    mode: Mode = field(default_factory=Mode)
    stats: Stats = field(default_factory=Stats)
    port: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self) -> FaultProxy:
        """Listen on loopback port ``port`` (0: a free one, then stored in ``port``)."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Stop listening and drop every connection."""
        self.reset_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def reset_all(self) -> None:
        """Abort every live connection with a TCP reset."""
        for writer in list(self._writers):
            _reset(writer)
        self._writers.clear()

    async def cut(self) -> None:
        """Reset every open connection; the proxy keeps listening, so clients can reconnect."""
        self.stats.cuts += 1
        self.reset_all()
        await asyncio.sleep(0)

    @property
    def connections(self) -> int:
        """Connections accepted so far."""
        return self.stats.connections

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        if self.mode.refuse:
            _reset(client_w)
            return
        try:
            server_r, server_w = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            _reset(client_w)
            return
        self._writers |= {client_w, server_w}
        up = asyncio.create_task(self._pump(client_r, server_w, client_w, upstream=True))
        down = asyncio.create_task(self._pump(server_r, client_w, server_w, upstream=False))
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        for task in (up, down):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for w in (client_w, server_w):
            self._writers.discard(w)
            with contextlib.suppress(Exception):
                w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    other: asyncio.StreamWriter, upstream: bool) -> None:
        sent = 0
        while True:
            chunk = await reader.read(16384)
            if not chunk:
                if self.mode.half_open:
                    await asyncio.Event().wait()  # a half-open path never passes the close on
                with contextlib.suppress(Exception):
                    writer.write_eof()
                return
            mode = self.mode
            if mode.black_hole or (mode.half_open and not upstream):
                continue  # swallowed
            if mode.latency:
                await asyncio.sleep(mode.latency)
            if mode.bandwidth:
                await asyncio.sleep(len(chunk) / mode.bandwidth)
            if upstream and mode.reset_after is not None and sent + len(chunk) > mode.reset_after:
                keep = max(0, mode.reset_after - sent)
                writer.write(chunk[:keep])
                with contextlib.suppress(Exception):
                    await writer.drain()
                self.stats.resets += 1
                _reset(writer)
                _reset(other)
                return
            sent += len(chunk)
            if upstream:
                self.stats.upstream_bytes += len(chunk)
            else:
                self.stats.downstream_bytes += len(chunk)
            writer.write(chunk)
            await writer.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0) rather than a clean FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(Exception):
        writer.transport.abort()


def register(cmd: argparse.ArgumentParser) -> None:
    """``mchub sim netfault``: run the proxy in front of a server, with a fixed fault mode."""
    cmd.description = ("网络故障中继 / Relay 127.0.0.1:LISTEN to TARGET and misbehave: e.g. put it between a hub "
                       "and the cloud to watch the hub ride out latency, a bandwidth cap, resets, a black hole or a "
                       "half-open path.\n"
                       "  mchub sim netfault --target 127.0.0.1:8443 --listen 9443 --latency 0.3 --bandwidth 20000")
    cmd.add_argument("--target", required=True, help="转发目标 / HOST:PORT to relay to")
    cmd.add_argument("--listen", type=int, default=0, help="本机监听端口 / "
                                                           "loopback port to listen on (default: any free port)")
    cmd.add_argument("--latency", type=float, default=0.0, help="每段数据增加的延迟（秒） / "
                                                                "seconds added to every chunk")
    cmd.add_argument("--bandwidth", type=float, help="每个方向的带宽（字节/秒） / bytes per second, each direction")
    cmd.add_argument("--reset-after", type=int, help="上行达到此字节数后重置连接 / "
                                                     "reset each connection after this many bytes upstream")
    cmd.add_argument("--black-hole", action="store_true", help="只接收不转发也不应答 / "
                                                               "accept and read, never forward or answer")
    cmd.add_argument("--half-open", action="store_true", help="转发请求但丢弃应答 / "
                                                              "forward requests, silently drop the answers")
    cmd.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    host, _, port = args.target.rpartition(":")
    mode = Mode(latency=args.latency, bandwidth=args.bandwidth, reset_after=args.reset_after,
                black_hole=args.black_hole, half_open=args.half_open)

    async def run() -> None:
        proxy = FaultProxy(int(port), host or "127.0.0.1", mode=mode, port=args.listen)
        await proxy.start()
        print(f"netfault: 127.0.0.1:{proxy.port} -> {args.target} {mode}", flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0
