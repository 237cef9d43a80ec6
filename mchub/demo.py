"""``mchub demo``: the whole system on loopback with simulated devices and peers.

The orchestrated demo (cloud, two enrolled hubs, scripted patients, HIS/PACS/MCH
simulators, live progress and a reconciliation summary) is not built yet. Until it is,
this command says what works today and how to try each part by hand.
"""

from __future__ import annotations

import argparse

PARTS = """\
mchub {version} — what runs today / 当前可用的部分:

  devices / 设备      mchub decode --list                      decode captured frames of every device
                      mchub sim idcard | station | bp | modbus | mqtt | pacs
  hub / 网关          mchub edge init | check-config | run | status | export      (docs/edge.md)
  cloud / 云端        mchub cloud init && mchub cloud serve                      (docs/cloud.md)
                      mchub sim fleet --url http://127.0.0.1:8443 --admin-token-file admin.token
  provisioning / 配置 mchub provision ca init | site | token | hub | device      (docs/provisioning.md)
  hospital / 医院     [mllp]/[his]/[dicom] enabled in cloud.toml ; python -m firmware_sim.his send ...  (docs/hl7.md)
  speed / 性能        mchub bench                                                 (bench/)

The one-command demo of the whole system is still to come (issue: "The main job").
"""


def register(parser: argparse.ArgumentParser) -> None:
    """Add the demo options."""
    parser.add_argument("--duration", type=float, default=None,
                        help="stop after this many seconds and print a summary (default: run until Ctrl-C)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from mchub import __version__

    print(PARTS.format(version=__version__))
    return 0
