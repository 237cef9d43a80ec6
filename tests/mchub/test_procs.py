"""The process supervisor starts, probes, kills and restarts real processes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mchub.procs import ProcessError, ProcessGroup, free_port, http_ready, tcp_ready

SERVER = "import http.server, sys; http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), http.server.SimpleHTTPRequestHandler).serve_forever()"  # noqa: E501


async def test_start_probe_kill_restart(tmp_path: Path) -> None:
    group = ProcessGroup(tmp_path)
    port = free_port()
    child = await group.start("web", [sys.executable, "-c", SERVER, str(port)],
                              ready=http_ready(f"http://127.0.0.1:{port}/"))
    assert child.running and await tcp_ready(port)()
    await group.kill("web")
    assert not child.running and child.proc is not None and child.proc.returncode == -9
    assert not await tcp_ready(port)()
    await group.restart("web")
    assert child.running and child.starts == 2
    await group.stop_all()
    assert not child.running
    assert (tmp_path / "web.log").read_text().count("==== start") == 2


async def test_a_child_that_dies_reports_its_log(tmp_path: Path) -> None:
    group = ProcessGroup(tmp_path)
    with pytest.raises(ProcessError, match="exited with code 3") as err:
        script = "print('config error: hub.toml [sync] url'); raise SystemExit(3)"
        await group.start("bad", [sys.executable, "-c", script], ready=tcp_ready(free_port()))
    assert "config error" in str(err.value)
    with pytest.raises(ProcessError, match="cannot start"):
        await group.start("missing", ["/nonexistent/binary"])
