"""One device misbehaves — floods, garbage, a storm of disconnects — and the others do not notice.

A real hub process has two devices on two stations: a well-behaved one (the usual
resend-until-acknowledged device) and a rogue one that, on every connection, floods
2000 readings without waiting, sprays garbage lines, then resets the connection, again
and again. At the end the cloud holds every reading of the good device exactly once,
every reading the rogue device was told was stored, and the garbage is kept on the hub
for inspection (``frame_errors``), none of it lost silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sqlite3
import struct
import threading
from pathlib import Path

import pytest

from tests.support.linedevice import LineDevice, reading_line
from tests.support.system import CloudProc, HubRig, cloud_numbers, cloud_sql, expected_readings, reconcile
from tests.support.waiting import wait_until

FLOOD = 2000
GARBAGE = 50


class RogueDevice:
    """Floods, sprays garbage and resets the connection, on every connection."""

    def __init__(self) -> None:
        self.acked: set[int] = set()
        self.sent = 0
        self.connections = 0
        self.port = 0
        self._next = 100_000
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> RogueDevice:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _listen(self) -> None:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1

        async def receive() -> None:
            with contextlib.suppress(Exception):
                while line := await reader.readline():
                    self.acked.add(int(line.split()[1]))

        rx = asyncio.create_task(receive())
        try:
            lines = []
            for _ in range(FLOOD):
                self._next += 1
                lines.append(reading_line(self._next))
            lines += [os.urandom(20).replace(b"\n", b"") + b"\n" for _ in range(GARBAGE)]
            lines += [b"R notanumber\n", b"\xff" * 5000 + b"\n"]
            writer.write(b"".join(lines))
            self.sent += FLOOD
            await writer.drain()
            await asyncio.sleep(0.5)  # some acks come back; the rest are lost with the connection
        except OSError:
            pass
        finally:
            rx.cancel()
            sock = writer.get_extra_info("socket")
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()  # reset, not a clean close


@pytest.mark.slow
def test_flood_garbage_and_disconnect_storm_on_one_device_do_not_affect_another(tmp_path: Path) -> None:
    cloud = CloudProc(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}").start()
    good = LineDevice(total=700, window=16, card_every=97, rate=100).start()
    rogue = RogueDevice().start()
    rig = HubRig(tmp_path / "hub", cloud, good)
    rig.cfg.write_text(rig.cfg.read_text() + (
        '[[stations]]\nid = "room-2"\n[[stations.devices]]\nid = "rogue-1"\ndriver = "test-line"\n'
        f'address = "127.0.0.1"\nport = {rogue.port}\n'))
    proc = rig.start()
    try:
        # the hub reconnects the rogue device (the check below), whenever a loaded machine gets to it
        wait_until(lambda: rogue.connections >= 2 or proc.poll() is not None, "the rogue device reconnected")
        last = rig.wait_synced()
        assert rig.stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        good.stop()
        rogue.stop()
        cloud.stop()
    assert rogue.connections >= 2, "the rogue device was never reconnected"
    report = reconcile(expected_readings(good), [n for n in cloud_numbers(cloud.db_url, rig.hub_id) if n < 100_000])
    assert report.ok, report
    rogue_rows = cloud_sql(cloud.db_url, "SELECT device_time FROM readings WHERE device_id = 'rogue-1'")
    rogue_numbers = [int(str(r[0])[1:]) for r in rogue_rows]
    assert len(rogue_numbers) == len(set(rogue_numbers))  # the flood, too, is stored at most once
    assert rogue.acked <= set(rogue_numbers)  # what the hub acknowledged to the rogue device reached the cloud
    conn = sqlite3.connect(rig.db)
    errors = conn.execute("SELECT count(*) FROM frame_errors WHERE device_id = 'rogue-1'").fetchone()[0]
    conn.close()
    assert errors >= GARBAGE  # garbage is kept for inspection, never silently dropped
    print(f"rogue device: {rogue.connections} connections, {rogue.sent} flood readings sent, "
          f"{len(rogue.acked)} acknowledged, {len(rogue_numbers)} in the cloud, {errors} frame errors kept; "
          f"last seq {last}")
