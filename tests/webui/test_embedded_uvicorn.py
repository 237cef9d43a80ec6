"""The hub serves its pages with uvicorn's server but not its command line (issue 21: 1.3 MB on the soak rig)."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
from webui import embedded_uvicorn
Config, Server = embedded_uvicorn.load()
from webui import conn_guard  # uvicorn.protocols.http.h11_impl
from uvicorn.protocols.http.h11_impl import H11Protocol
import uvicorn.server
import uvicorn.lifespan.off, uvicorn.lifespan.on
loaded = [m for m in ("click", "multiprocessing", "uvicorn.main", "uvicorn.supervisors") if m in sys.modules]
same = Server is uvicorn.server.Server and issubclass(conn_guard.GuardedH11Protocol, H11Protocol)
print(json.dumps({"loaded": loaded, "same": same}))
"""


def _probe(prelude: str = "") -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", prelude + PROBE], capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout))


def test_the_server_and_its_protocol_load_without_click_or_multiprocessing() -> None:
    assert _probe() == {"loaded": [], "same": True}


def test_a_process_that_imported_uvicorn_itself_keeps_the_real_package() -> None:
    got = _probe("import uvicorn\n")
    assert got["same"] is True and "uvicorn.main" in got["loaded"]  # type: ignore[operator]
