"""Real servers for the DICOM intake tests: STOW-RS under uvicorn, the C-STORE SCP on a free port."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn

from cloud.dicom.index import StudyIndex
from cloud.dicom.objects import ObjectStore
from cloud.dicom.scp import StoreScp
from cloud.dicom.stow import stow_app

SCU_AET = "SIMPACS"


@dataclass
class Recorder:
    """An ``on_indexed`` callback that records what it was told; can be made to fail."""

    seen: list[tuple[StudyIndex, Path]] = field(default_factory=list)
    fail_next: int = 0

    async def __call__(self, index: StudyIndex, path: Path) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("database unavailable")
        self.seen.append((index, path))

    def by_uid(self) -> dict[str, StudyIndex]:
        return {i.sop_instance_uid: i for i, _ in self.seen}


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    return ObjectStore(tmp_path / "objects")


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


async def serve(app: object) -> AsyncIterator[int]:
    """Run ``app`` under uvicorn on a free loopback port in this event loop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))  # type: ignore[arg-type]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def stow_url(store: ObjectStore, recorder: Recorder) -> AsyncIterator[str]:
    """Base URL of a live STOW-RS service (``.../dicomweb``) storing into ``store``."""
    async for port in serve(stow_app(store, recorder, authorise=None, max_body_bytes=16 * 1024 * 1024)):
        yield f"http://127.0.0.1:{port}/dicomweb"


@pytest.fixture
async def scp_port(store: ObjectStore, recorder: Recorder) -> AsyncIterator[int]:
    """Port of a live C-STORE SCP (AE MCHUB) that accepts only calling AE ``SIMPACS``."""
    scp = StoreScp(store, recorder, {SCU_AET: ["127.0.0.1"]}, host="127.0.0.1", port=0)
    port = scp.start(asyncio.get_running_loop())
    try:
        yield port
    finally:
        await asyncio.to_thread(scp.stop)
