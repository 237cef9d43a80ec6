"""A real hub process (``python -m mchub edge run``) with a simulated station, for browser tests.

No cloud: the hub has no ``[sync] url`` (the kiosk and status page must work offline).
Staff user ``nurse`` with PIN ``246810``.
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edge import identity
from edge.staff_secrets import write_secret_file
from firmware_sim.patients import Patient, id_number, make_patient, patients
from mchub.procs import free_port
from provisioning.auth import hash_password
from tests.support.kioskrig import StationRig
from tests.support.refcloud import RefCloud
from tests.support.waiting import HANG_S

ROOT = Path(__file__).resolve().parents[3]
PIN = "246810"


@dataclass
class RunningHub:
    """The hub's base URL, its data directory and its log."""

    url: str
    data_dir: Path
    log: Path
    rig: StationRig


def write_hub(base: Path, rig: StationRig, port: int, web_extra: str = "") -> Path:
    """Identity and hub.toml (no sync) for a hub with the rig's station (``web_extra``: more [web] keys)."""
    base.mkdir(parents=True, exist_ok=True)
    keys = RefCloud(base / "keys.db").write_key_file(base / "cloud.json")  # only its key file; never started
    identity.init(base / "identity", "clinic-kiosk", keys)
    write_secret_file(base / "staff" / "nurse.pin", hash_password(PIN, log_n=12))  # 0600, as in production
    cfg = base / "hub.toml"
    cfg.write_text(
        '[hub]\nidentity_dir = "identity"\ndata_dir = "data"\nplugins = ["mchub.demo.blebridge"]\n'
        f'[web]\nbind = "127.0.0.1"\nport = {port}\nsecure_cookie = false\nkiosk_summary_s = 60\n{web_extra}'
        '[[web.users]]\nname = "nurse"\nsecret_file = "staff/nurse.pin"\n'
        '[storage]\nmin_free_mb = 0\n' + rig.hub_toml_station("room-1", "血压身高体重 1"),
        encoding="utf-8")
    return cfg


@contextlib.contextmanager
def running_hub(base: Path, web_extra: str = "", nofile: int | None = None) -> Iterator[RunningHub]:
    """Start the station simulators and the hub; stop both afterwards (SIGTERM, then wait).
    ``nofile``: the hub's limit of open files (as a small Pi's service might have)."""
    rig = StationRig().start()
    port = free_port()
    cfg = write_hub(base, rig, port, web_extra)
    log = base / "hub.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mchub", "edge", "run", "--config", str(cfg)],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=None if nofile is None else lambda: resource.setrlimit(
                                    resource.RLIMIT_NOFILE, (nofile, nofile)))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + HANG_S  # a hung start, not a slow one (a loaded machine imports slowly)
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"hub exited {proc.returncode}: {log.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{url}/login", timeout=2).close()
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"hub did not answer in {HANG_S:.0f} s: {log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield RunningHub(url, base / "data", log, rig)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        rig.stop()


def child(seed: int = 3) -> Patient:
    """A reproducible child of about four (102.6 cm, 17 kg, pulse 105: the issue's child)."""
    import dataclasses
    import datetime as dt
    import random

    p = make_patient(random.Random(seed), "child")
    born = dt.date.today() - dt.timedelta(days=4 * 365 + 30)
    return dataclasses.replace(p, birth_date=born, national_id=id_number(p.national_id[:6], born, seed, p.sex),
                               height_cm=102.6, weight_kg=17.0, pulse=105, systolic=100, diastolic=62)


def pregnant(seed: int = 5) -> Patient:
    """A reproducible woman at 13 weeks with a severe-range blood pressure (160/102)."""
    import dataclasses
    import random

    p = make_patient(random.Random(seed), "pregnant")
    return dataclasses.replace(p, pregnant_weeks=13, systolic=160, diastolic=102)


def patient(n: int = 0) -> Patient:
    """A reproducible adult patient (synthetic name and ID number)."""
    stream = patients(seed=11, mix="adult=1")
    for _ in range(n):
        next(stream)
    return next(stream)
