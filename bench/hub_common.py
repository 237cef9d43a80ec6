"""Helpers of the hub benchmarks (bench_hub_store, bench_drain, bench_hub_rss)."""

from __future__ import annotations

import os
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import machine  # noqa: E402, F401 - re-exported for the hub benchmarks
from drivers.base import Measurement  # noqa: E402
from protocol import codes  # noqa: E402
from protocol.model import Observation  # noqa: E402


def disk_dir(prefix: str) -> Path:
    """A temporary directory on a real disk (not tmpfs: fsync must cost what it costs)."""
    base = os.environ.get("MCHUB_BENCH_DIR", "/var/tmp")
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


def measurements(n: int, seed: int = 7) -> list[Measurement]:
    """Realistic device events: BP (with device clock), temperature, weight+height."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        kind = ("blood_pressure", "temperature", "height_weight")[i % 3]
        t = f"2025-03-01T{8 + i // 36000 % 10:02d}:{i // 600 % 60:02d}:{i // 10 % 60:02d}.{i % 10}"
        if kind == "blood_pressure":
            s, d = rnd.randint(100, 170), rnd.randint(60, 105)
            obs = (Observation(code=codes.SYSTOLIC, value=float(s), unit="mm[Hg]"),
                   Observation(code=codes.DIASTOLIC, value=float(d), unit="mm[Hg]"),
                   Observation(code=codes.PULSE, value=float(rnd.randint(55, 110)), unit="/min"))
            raw = bytes([0x1E, s, 0, d, 0, 0, 0, 0xE9, 7, 3, 1]) + i.to_bytes(4, "big")
        elif kind == "temperature":
            obs = (Observation(code=codes.TEMPERATURE, value=round(rnd.gauss(36.6, 0.4), 1), unit="Cel"),)
            raw = bytes([0x06]) + i.to_bytes(4, "big")
        else:
            obs = (Observation(code=codes.WEIGHT, value=round(rnd.gauss(62, 12), 1), unit="kg"),
                   Observation(code=codes.HEIGHT, value=round(rnd.gauss(163, 8), 1), unit="cm"))
            raw = bytes([0x08]) + i.to_bytes(4, "big")
        out.append(Measurement(kind=kind, observations=obs, device_time=t, raw=raw))  # type: ignore[arg-type]
    return out


REFCLOUD_MAIN = """
import sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from protocol.keys import load_ed25519_public
from tests.support.refcloud import RefCloud
cloud = RefCloud(Path({db!r})).start()
cloud.write_key_file(Path({keyfile!r}))
print(cloud.port, flush=True)
for line in sys.stdin:
    hub_id, key = line.split()
    cloud.hubs[hub_id] = load_ed25519_public(bytes.fromhex(key))
    print("ok", cloud.body_bytes, cloud.requests, flush=True)
"""


def refcloud_process(d: Path) -> tuple[object, str, Path]:
    """The reference receiver in its own process (so it does not share the hub's GIL).

    Returns (process, url, cloud key file); write ``"hub_id pubhex\\n"`` to its stdin to
    register a hub (each line is answered ``ok <body bytes> <requests>``).
    """
    import subprocess

    keyfile = d / "cloud.json"
    code = REFCLOUD_MAIN.format(root=str(ROOT), db=str(d / "cloud.db"), keyfile=str(keyfile))
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}", keyfile
