"""Issue 17 finding 9: nothing the system writes is readable by others, and no patient data sits
in plaintext in any log, database, WAL or backup.

The probe found every database, WAL file, config and log of ``mchub demo`` at mode 0644, and a
national ID number in logs/cloud.log (the dashboard search sent it in a GET query and the uvicorn
access log came back through the root logger). Here one bounded demo runs as a user runs it;
while it runs, requests carry an ID number in their query strings (what a browser or a probe
would send), and the walk happens twice (mid-run, when the WAL files exist, and after), plus a
hub backup made by `mchub edge backup`. Every file and directory must be private to the user
(no group/other bits), and no demo patient's ID number, name or address may appear in any file
(UTF-8 or UTF-16, the encoding of the ID-card frames), DICOM objects included (sealed at rest
with the cloud's at-rest key, cloud/dicom/objects.py).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mchub.demo.script import scripted_patients
from tests.support.waiting import HANG_S

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
SEED = 1


@dataclass
class DemoRun:
    """The demo's work directory, what the walk saw while it ran, and its output."""

    work: Path
    modes: dict[Path, int] = field(default_factory=dict)
    wal_seen: list[Path] = field(default_factory=list)
    output: list[str] = field(default_factory=list)


def walk(top: Path, into: dict[Path, int]) -> None:
    """Record the permission bits of every file and directory under ``top`` (symlinks to ptys aside)."""
    for path in [top, *top.rglob("*")]:
        try:
            st = path.lstat()
        except FileNotFoundError:  # a temporary file gone between listing and looking
            continue
        if not stat.S_ISLNK(st.st_mode):
            into[path] = stat.S_IMODE(st.st_mode)


def demo_people() -> dict[str, list[str]]:
    """The ID numbers, names and addresses of every patient the demo's script can send."""
    people = [s.patient for s in itertools.islice(scripted_patients(SEED), 400)]
    return {"id": [p.national_id for p in people], "name": [p.name for p in people],
            "address": [p.address for p in people]}


def get(url: str) -> None:
    """One request; refused or redirected, it was still logged (or not)."""
    with contextlib.suppress(urllib.error.HTTPError):
        urllib.request.urlopen(url, timeout=10).close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    run = DemoRun(tmp_path_factory.mktemp("atrest") / "work")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mchub", "demo", "--duration", "15", "--offline-at", "3", "--offline-for", "4",
         "--pace", "1", "--seed", str(SEED), "--workdir", str(run.work), "--plain"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    ready = threading.Event()
    cloud: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            run.output.append(line)
            if m := re.search(r"cloud: ready at (http://127\.0\.0\.1:\d+)", line):
                cloud.append(m.group(1))
            if "网关 hub-B" in line and "running" in line:
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(180) and cloud, "".join(run.output)
        nid = demo_people()["id"][0]
        for path in (f"/ui/dashboard/search?q={nid}", f"/api/v1/admin/hubs?national_id={nid}",
                     f"/ui/login?next=/ui/dashboard/search%3Fq%3D{nid}"):
            get(cloud[0] + path)
        deadline = time.monotonic() + HANG_S
        while time.monotonic() < deadline and not run.wal_seen and proc.poll() is None:  # while the databases are open
            walk(run.work, run.modes)
            run.wal_seen = [p for p in run.modes if p.name.endswith("-wal")]
            time.sleep(0.5)
        assert proc.wait(300) == 0, "".join(run.output)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(10)
    hub = run.work / "hub-A" / "hub.toml"
    done = subprocess.run([sys.executable, "-m", "mchub", "edge", "backup", "--config", str(hub), "--out",
                           str(run.work / "hub-A" / "hub-A.db")], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    walk(run.work, run.modes)
    return run


@pytest.mark.slow
def test_every_file_and_directory_is_private(demo: DemoRun) -> None:
    names = {p.name for p in demo.modes}
    assert {"cloud.db", "hub.db", "cloud.toml", "hub.toml", "cloud.log", "hub-A.log", "nurse.pin",
            "hub-A.db"} <= names, sorted(names)
    assert demo.wal_seen, "no WAL file seen while the demo ran"
    readable = {str(p.relative_to(demo.work.parent)): f"{m:04o}" for p, m in demo.modes.items() if m & 0o077}
    assert readable == {}, readable


def plaintext(work: Path, *, dicom: bool) -> dict[str, list[str]]:
    """Which files hold which kind of patient data in clear (``dicom``: only the DICOM store, else all but it)."""
    needles: list[tuple[str, bytes]] = []
    for kind, values in demo_people().items():
        for value in values:
            needles += [(kind, value.encode("utf-8")), (kind, value.encode("utf-16-le"))]
            if kind == "id" and value.endswith("X"):
                needles.append((kind, value.lower().encode()))
    found: dict[str, list[str]] = {}
    for path in sorted(work.rglob("*")):
        if path.is_symlink() or not path.is_file() or ("dicom" in path.relative_to(work).parts) != dicom:
            continue
        data = path.read_bytes()
        kinds = sorted({kind for kind, needle in needles if needle in data})
        if kinds:
            found[str(path.relative_to(work))] = kinds
    return found


@pytest.mark.slow
def test_no_id_number_name_or_address_in_any_log_database_wal_or_backup(demo: DemoRun) -> None:
    assert (demo.work / "logs" / "cloud.log").stat().st_size > 0
    assert plaintext(demo.work, dicom=False) == {}


@pytest.mark.slow
def test_no_patient_data_in_plaintext_in_the_dicom_store(demo: DemoRun) -> None:
    assert plaintext(demo.work, dicom=True) == {}
