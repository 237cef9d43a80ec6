"""Issue 17 finding 9 on `mchub cloud serve --workers 2`: no ID number reaches the log.

Each uvicorn worker set its logging up after uvicorn had switched the access log off, and
turned ``propagate`` back on, so every request line (query string included) reached the
root handler: a dashboard search by ID number put the number in the log. Here two real
worker processes answer requests whose query strings carry an ID number; the log must show
neither the number nor an access line, and a message that quotes one is masked.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from tests.cloud.support import make_cloud, worker_process
from tests.cloud.web.support import NID, WEB
from tests.support.services import free_port


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_two_workers_log_no_id_number_and_no_access_lines(tmp_path: Path) -> None:
    cfg, _ = make_cloud(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}", extra_toml=WEB)
    port = free_port()
    log = tmp_path / "serve.log"
    with worker_process(cfg, port, log, workers=2):
        base = f"http://127.0.0.1:{port}"
        for _ in range(6):  # both workers
            assert get(f"{base}/ui/dashboard/search?q={NID}") in (200, 303, 400)
            assert get(f"{base}/api/v1/admin/hubs?national_id={NID}") in (401, 404)
            assert get(f"{base}/readyz?patient={NID}") == 200
    text = log.read_text(encoding="utf-8")
    assert "cloud worker ready" in text  # the log is there and was written by the workers
    assert NID not in text and NID.lower() not in text
    assert "/ui/dashboard/search" not in text and "GET /readyz" not in text  # no access log lines
