"""The lines of the progress block and of the final summary (zh-CN first, English beside)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mchub.demo.cloudstats import CloudCounts
from mchub.demo.display import clock, pad
from mchub.demo.hubside import DemoHub
from mchub.demo.reconcile import Reconciliation
from mchub.demo.scenario import Tally

GROUPS = {"adult": "成人 adult", "pregnant": "孕妇 pregnant", "child": "儿童 child"}


@dataclass
class PeerLine:
    """One hospital-side part for the display: its label and what it did so far."""

    label: str
    text: str


def hub_line(hub: DemoHub, status: dict[str, Any] | None, offline_for: float | None) -> str:
    """One hub: link, records, buffered, synced, devices."""
    if status is None:
        return f" 网关 {hub.label:<7} 无响应 not answering (log: logs/{hub.label}.log)"
    link = "离线 OFFLINE" if hub.offline else "在线 online "
    records = int(status.get("next_seq", 1)) - 1
    devices = status.get("devices") or []
    up = sum(1 for d in devices if d.get("connected") or d.get("up") or d.get("state") == "up")
    since = f"  (断网 offline {clock(offline_for)})" if offline_for is not None else ""
    return (f" 网关 {hub.label:<7} {link}  记录 records {records:>4} · 缓存 buffered {status.get('queue_depth', 0):>3}"
            f" · 已同步 synced {status.get('acked_through', 0):>4} · 设备 devices {up}/{len(devices)}{since}")


def patients_line(tally: Tally) -> str:
    """Patients measured by group."""
    groups = " · ".join(f"{GROUPS[g]} {tally.patients.get(g, 0)}" for g in GROUPS)
    return (f" 患者 patients  已测 measured {tally.measured} ({groups}) · 异常 abnormal {tally.abnormal}"
            f" · 进行中 in progress {tally.in_progress}")


def block(elapsed: float, duration: float | None, tally: Tally, hubs: list[tuple[DemoHub, dict[str, Any] | None,
          float | None]], cloud: CloudCounts, peers: list[PeerLine]) -> list[str]:
    """The whole progress block."""
    until = f" / {clock(duration)}" if duration else "  (Ctrl-C 结束 to stop)"
    if duration and elapsed > duration:
        until = f" / {clock(duration)} · 收尾 winding down"
    lines = [f"mchub demo · 运行 running {clock(elapsed)}{until}", patients_line(tally)]
    lines += [hub_line(h, st, off) for h, st, off in hubs]
    per_hub = " · ".join(f"{h.label} {cloud.readings.get(h.hub_id, 0)}" for h, _, _ in hubs)
    lines.append(f" 云端 cloud    读数 readings {sum(cloud.readings.values())} ({per_hub}) · 就诊 visits "
                 f"{sum(cloud.sessions.values())}" + (f"  [{cloud.error}]" if cloud.error else ""))
    topics = sorted({t for t, _ in cloud.outbox})
    queues = " · ".join(f"{t} {cloud.by_status('done', t)}/{cloud.pending(t)}/{cloud.by_status('dead', t)}"
                        for t in topics)
    lines.append(f" 出站 outbound (送达 done/待发 pending/死信 dead) {queues or '—'}")
    lines += [f" {pad(p.label, 12)} {p.text}" for p in peers]
    return lines


def one_line(elapsed: float, tally: Tally, hubs: list[tuple[DemoHub, dict[str, Any] | None, float | None]],
             cloud: CloudCounts, delivered: dict[str, int] | None = None) -> str:
    """The plain-output progress line."""
    parts = [f"{clock(elapsed)} patients {tally.measured}"]
    for h, st, _ in hubs:
        state = "offline" if h.offline else "online"
        q = st.get("queue_depth", "?") if st else "?"
        parts.append(f"{h.label} {state} buffered {q} cloud {cloud.readings.get(h.hub_id, 0)}")
    parts.append(f"cloud readings {sum(cloud.readings.values())} outbound pending {cloud.pending()}")
    parts += [f"{label} delivered {n}" for label, n in (delivered or {}).items()]
    return " | ".join(parts)


def summary(rec: Reconciliation, tally: Tally, peers: list[PeerLine], hub_ids: list[str], offline_spells: int,
            undrained: list[str]) -> list[str]:
    """The final report."""
    verdict = "通过 PASS" if rec.ok and not undrained else "失败 FAIL"
    lines = ["", "=" * 72, f"汇总 summary — {verdict}", "=" * 72,
             patients_line(tally),
             f" 网关 hubs       {len(hub_ids)} ({', '.join(hub_ids)}); 断网 offline spells {offline_spells}",
             f" 设备读数 device readings delivered {rec.delivered} · 云端 in the cloud {rec.in_cloud}"
             f" · 异常标记 flagged {rec.flagged}",
             f" 就诊 visits     opened {rec.sessions_expected} · 云端 in the cloud {rec.sessions_in_cloud}",
             f" 丢失 lost       {rec.lost}",
             f" 重复 duplicated {rec.duplicated}"]
    if rec.unexpected:
        lines.append(f" 来历不明 unexpected readings {rec.unexpected}")
    for d in rec.devices:
        if d.lost or d.duplicated:
            lines.append(f"   {d.hub_id}/{d.device_id}: delivered {d.delivered}, cloud {d.in_cloud}, "
                         f"lost {d.lost}, duplicated {d.duplicated}")
    for hub in undrained:
        lines.append(f"   {hub}: still had records waiting to sync when the demo ended")
    for p in peers:
        lines.append(f" {pad(p.label, 12)} {p.text}")
    for s in tally.stuck[:5]:
        lines.append(f" 注意 note: {s}")
    lines.append("=" * 72)
    return lines
