"""``mchub sim fleet``: many virtual hubs syncing realistic traffic to a cloud (load tests)."""

from __future__ import annotations

import argparse

HELP = "虚拟网关群 / enroll N virtual hubs and sync realistic traffic to a cloud"
DESCRIPTION = ("虚拟网关群压测 / Enroll N virtual hubs through the cloud admin API and sync one visit "
               "(6 records) per hub every INTERVAL seconds; prints batches, records, HTTP statuses and ack "
               "latency p50/p99.")


def register(fleet: argparse.ArgumentParser) -> None:
    """Add the fleet options to its sub-parser."""
    fleet.description = DESCRIPTION
    fleet.add_argument("--url", action="append", required=True,
                       help="云端地址（可重复） / "
                            "cloud base URL, e.g. http://127.0.0.1:8443 (repeat for several workers)")
    fleet.add_argument("--admin-token-file", required=True, help="保存云端管理令牌的文件 / "
                                                                 "file holding the cloud's admin bearer token")
    fleet.add_argument("--hubs", type=int, default=10, help="虚拟网关数量 / number of virtual hubs (default 10)")
    fleet.add_argument("--interval", type=float, default=10.0, help="每个网关两次同步之间的秒数 / "
                                                                    "seconds between syncs of one hub (default 10)")
    fleet.add_argument("--duration", type=float, default=60.0, help="运行秒数 / seconds to run (default 60)")
    fleet.add_argument("--visits", type=int, default=1, help="每次同步每个网关的就诊数 / "
                                                             "visits per hub per sync (default 1)")
    fleet.set_defaults(func=_fleet)


def _fleet(args: argparse.Namespace) -> int:
    import asyncio
    from pathlib import Path

    from firmware_sim.fleet import run_fleet

    token = Path(args.admin_token_file).read_text().strip()
    r = asyncio.run(run_fleet(args.url, token, hubs=args.hubs, interval_s=args.interval, duration_s=args.duration,
                              visits=args.visits))
    print(f"{r.hubs} hubs, {r.seconds:.0f} s: {r.batches} batches, {r.records} records, "
          f"HTTP {dict(sorted(r.statuses.items()))} (0 = network error, retried), "
          f"ack latency p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms")
    return 0 if set(r.statuses) <= {0, 200, 409, 503} else 1  # 0: network errors; 0 and 503 are retried
