"""Issue 17 finding 4, over real sockets against a real ``mchub cloud serve`` process:
every body is limited before it is read. Eight concurrent 30 MB junk batches without
credentials leave the server's peak memory almost where it was (each is refused after
its header, inside an ingest slot taken before the body is read), and a 100 MB
enrolment request is answered 413 from its Content-Length alone, before any body byte
is sent. Also: a chunked batch is 411, a chunked body past a route's cap is 413."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import aiohttp

from protocol.envelope import SIGNATURE_LEN, seal
from tests.cloud.support import hub, make_cloud, worker_process
from tests.support.services import free_port
from tests.support.waiting import HANG_S

MB = 1 << 20
BATCH = {"Content-Type": "application/vnd.mchub.batch"}


def _status(pid: int, field: str) -> int:
    """VmRSS / VmHWM (peak) of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


def _junk_batches(keys: object, size: int) -> list[bytes]:
    """Four of pure junk and four whose clear header is well formed, names an unregistered
    hub and promises a body that makes the whole request ``size`` bytes."""
    out = [bytes([i]) * size for i in range(4)]
    for i in range(4):
        h = hub(keys, f"STRANGER{i}", i)  # type: ignore[arg-type]
        h.add_visit()
        real = seal(h.pending, hub_id=h.hub_id, epoch=h.epoch, signer=h.key, recipient=h.cloud.recipient)
        head_len = real.index(h.hub_id.encode()) + len(h.hub_id)
        body_len = size - head_len - 4 - SIGNATURE_LEN
        out.append(real[:head_len] + struct.pack(">I", body_len) + b"\x5a" * (body_len + SIGNATURE_LEN))
    return out


async def _raw(port: int, head: bytes) -> bytes:
    """Send ``head`` (request line and headers, no body) and read the answer's first bytes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        return await asyncio.wait_for(reader.read(4096), HANG_S)
    finally:
        writer.close()


async def test_eight_30mb_junk_batches_and_a_100mb_enrolment_leave_memory_bounded(tmp_path: Path) -> None:
    cfg, keys = make_cloud(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}")
    port = free_port()
    bodies = _junk_batches(keys, 30 * MB)
    with worker_process(cfg, port, tmp_path / "cloud.log") as proc:
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
            async with http.get(f"{url}/readyz") as r:
                assert r.status == 200
            before = _status(proc.pid, "VmRSS")

            async def post(body: bytes) -> tuple[int, str]:
                async with http.post(f"{url}/api/v1/batches", data=body, headers=BATCH) as r:
                    return r.status, (await r.json())["reason"]

            answers = await asyncio.gather(*(post(b) for b in bodies))
            assert sorted(answers) == sorted([(400, "malformed")] * 4 + [(403, "unknown_hub")] * 4)
            enrol = await _raw(port, b"POST /api/v1/enroll HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                                     b"\r\nContent-Length: 104857600\r\n\r\n")
            assert enrol.startswith(b"HTTP/1.1 413"), enrol[:200]
            chunked = await _raw(port, b"POST /api/v1/batches HTTP/1.1\r\nHost: x\r\n"
                                       b"Transfer-Encoding: chunked\r\n\r\n")
            assert chunked.startswith(b"HTTP/1.1 411"), chunked[:200]
            peak = _status(proc.pid, "VmHWM")
    growth = peak - before
    print(f"cloud RSS before {before / MB:.0f} MB, peak during 8 x 30 MB junk batches + 100 MB enrolment "
          f"{peak / MB:.0f} MB (+{growth / MB:.0f} MB)")
    assert growth < 48 * MB, f"peak memory grew by {growth / MB:.0f} MB under the junk-body flood"


async def test_a_chunked_body_past_the_route_cap_is_413(tmp_path: Path) -> None:
    """No Content-Length to check first: the bytes are counted as they are read and cut at the cap."""
    cfg, _ = make_cloud(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}")
    port = free_port()

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(200):  # 200 x 1 kB... then 8 MB more: past the enrolment cap of 64 kB
            yield b"{" * 1024
        for _ in range(8):
            yield b" " * MB

    with worker_process(cfg, port, tmp_path / "cloud.log"):
        async with aiohttp.ClientSession() as http, http.post(
                f"http://127.0.0.1:{port}/api/v1/enroll", data=chunks(),
                headers={"Content-Type": "application/json"}) as r:
            assert r.status == 413
