"""Peak resident memory of the hub process under load, with every part switched on.

Runs ``python -m mchub edge run`` as a subprocess with 16 synthetic devices (20
readings/s each), sync to the reference receiver (own process), the MQTT command
channel to a throwaway Mosquitto, and the status API; reads the kernel's high-water mark
(VmHWM) of the hub process after ``seconds``. Drivers from the shared registry are
added by name when they need no hardware (none on this branch yet).

    .venv/bin/python bench/bench_hub_rss.py [SECONDS]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.hub_common import ROOT, disk_dir, machine, refcloud_process
from edge import identity
from tests.support.services import MosquittoServer, free_port


def _vm(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def run(seconds: float = 10.0, devices: int = 16) -> dict[str, float]:
    """Measure and return the figures (also used by ``mchub bench``)."""
    d = disk_dir("mchub-bench-rss-")
    cloud, url, keyfile = refcloud_process(d)
    broker = MosquittoServer().start()
    hub = None
    try:
        ident = identity.init(d / "identity", "rss-hub", keyfile)
        cloud.stdin.write(f"rss-hub {ident.public_hex}\n")  # type: ignore[attr-defined]
        cloud.stdin.flush()  # type: ignore[attr-defined]
        cloud.stdout.readline()  # type: ignore[attr-defined]
        devs = "".join(f'[[stations.devices]]\nid = "syn-{i}"\ndriver = "synthetic"\nrate = 20\n'
                       for i in range(devices))
        (d / "hub.toml").write_text(
            f'[hub]\nidentity_dir = "identity"\nplugins = ["tests.support.synthetic"]\n'
            f'[sync]\nurl = "{url}"\n[mqtt]\nhost = "127.0.0.1"\n'
            f'port = {broker.port}\ntelemetry_interval_s = 1\n[web]\nbind = "127.0.0.1"\nport = {free_port()}\n'
            f'[storage]\nmin_free_mb = 0\n[[stations]]\nid = "room-1"\n{devs}', encoding="utf-8")
        hub = subprocess.Popen([sys.executable, "-m", "mchub", "--log-level", "WARNING", "edge", "run",
                                "--config", str(d / "hub.toml")], cwd=ROOT)
        time.sleep(seconds)
        assert hub.poll() is None, "hub exited"
        peak, now = _vm(hub.pid, "VmHWM"), _vm(hub.pid, "VmRSS")
    finally:
        if hub is not None:
            hub.terminate()
            hub.wait(30)
        cloud.terminate()  # type: ignore[attr-defined]
        broker.destroy()
        shutil.rmtree(d)
    return {"hub peak RSS MB": round(peak / 2**20, 1), "hub RSS at end MB": round(now / 2**20, 1),
            "hub devices configured": devices}


if __name__ == "__main__":
    print(machine())
    for name, value in run(float(sys.argv[1]) if len(sys.argv) > 1 else 10.0).items():
        print(f"{name:<48} {value:>12,}")
