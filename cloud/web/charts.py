"""The dashboard's three charts over the last 24 hours, as data for ECharts (drawn in the browser).

* **traffic** — per hour in and out: records stored from hubs, HL7 frames received, HIS
  messages and MCH uploads queued;
* **errors** — per hour error rate in %: HL7 frames answered with an error or rejected, sync
  batches refused, outbound messages that became dead letters (an hour with nothing
  received shows no point, not 0 %);
* **lag** — per hour the worst sync lag of an online hub with a backlog, and the age of the
  oldest pending outbound message, in minutes.

Everything comes from the per-minute samples (:mod:`cloud.web.sampler`) and the refused
batches in ``audit_log``, never from a day of messages; as the samples change once a minute,
each worker reads them once a minute per database (:data:`_READ`), whatever the page load.
Each chart is ``{"id", "title", "unit", "labels", "series": [{"name", "data"}]}``: hours
oldest first labelled ``MM-DD HH:00`` in China time; the page passes them in a JSON script
block that ``cloud/web/static/charts.js`` hands to the vendored ECharts (docs/dashboard.md).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cloud.db.engine import Database, Tx
from cloud.web.queues import HOUR_MS, Queue, hour_label, increases

_SAMPLES = ("SELECT metric, minute / 60 AS h, MIN(value) AS lo, MAX(value) AS hi, SUM(value) AS n "
            "FROM dashboard_samples WHERE metric IN ('hl7.received', 'hl7.errors', 'sync.batches', 'outbox.dead', "
            "'sync.lag_s', 'outbox.lag_s') AND minute >= $1 GROUP BY metric, minute / 60 ORDER BY metric, h")
_REFUSED = ("SELECT at_ms / 3600000 AS h, COUNT(*) AS n FROM audit_log WHERE action IN ('batch.refused', 'batch.gap') "
            "AND at_ms >= $1 GROUP BY at_ms / 3600000")


@dataclass(frozen=True)
class _Hourly:
    """What the charts need besides the queues' rates, per hour number (absent: no sample that hour)."""

    hl7_in: dict[int, float]
    hl7_bad: dict[int, float]
    batches: dict[int, float]
    refused: dict[int, float]
    died: dict[int, float]
    sync_lag_min: dict[int, float]
    outbox_lag_min: dict[int, float]


#: per database: (minute it was read in, what was read) — the samples change once a minute
_READ: weakref.WeakKeyDictionary[Database, tuple[int, _Hourly]] = weakref.WeakKeyDictionary()


async def _hourly(tx: Tx, first: int) -> _Hourly:
    by: dict[str, list[Any]] = {}
    for r in await tx.fetch(_SAMPLES, (first - 1) * 60):
        by.setdefault(r["metric"], []).append(r)

    def per_hour(metric: str, column: str) -> dict[int, float]:
        return {int(r["h"]): float(r[column]) for r in by.get(metric, [])}

    def growth(metric: str) -> dict[int, float]:
        return {int(r["h"]): float(r["n"]) for r in increases(by.get(metric, []))}

    refused = {int(r["h"]): float(r["n"]) for r in await tx.fetch(_REFUSED, first * HOUR_MS)}
    return _Hourly(per_hour("hl7.received", "n"), per_hour("hl7.errors", "n"), growth("sync.batches"), refused,
                   growth("outbox.dead"), {h: round(v / 60, 1) for h, v in per_hour("sync.lag_s", "hi").items()},
                   {h: round(v / 60, 1) for h, v in per_hour("outbox.lag_s", "hi").items()})


def _rate(bad: float | None, total: float | None) -> float | None:
    """Percent of ``total`` that went wrong; None (no point) when nothing came."""
    if not total:
        return None
    return round(100.0 * (bad or 0.0) / total, 1)


async def build(db: Database, tx: Tx, now: int, queues: list[Queue], t: Callable[[str], str]) -> list[dict[str, Any]]:
    """The traffic, error-rate and lag charts (``queues``: sync, his, mch as the page loaded them)."""
    first = now // HOUR_MS - 23
    hours = list(range(first, first + 24))
    minute = now // 60_000
    read = _READ.get(db)
    if read is None or read[0] != minute:
        read = (minute, await _hourly(tx, first))
        _READ[db] = read
    d = read[1]
    rates = {q.key: [v for _, v in q.rates[-24:]] for q in queues}
    out = [a + b for a, b in zip(rates["his"], rates["mch"], strict=True)]
    labels = [hour_label(h) for h in hours]
    return [
        {"id": "traffic", "title": t("chart.traffic"), "unit": t("chart.per_hour"), "labels": labels, "series": [
            {"name": t("chart.sync_in"), "data": rates["sync"]},
            {"name": t("chart.hl7_in"), "data": [d.hl7_in.get(h, 0.0) for h in hours]},
            {"name": t("chart.his_out"), "data": rates["his"]},
            {"name": t("chart.mch_out"), "data": rates["mch"]}]},
        {"id": "errors", "title": t("chart.errors"), "unit": "%", "labels": labels, "series": [
            {"name": t("chart.hl7_errors"), "data": [_rate(d.hl7_bad.get(h), d.hl7_in.get(h)) for h in hours]},
            {"name": t("chart.sync_refused"),
             "data": [_rate(d.refused.get(h), d.batches.get(h, 0.0) + d.refused.get(h, 0.0)) for h in hours]},
            {"name": t("chart.out_dead"), "data": [_rate(d.died.get(h), n) for h, n in zip(hours, out, strict=True)]}]},
        {"id": "lag", "title": t("chart.lag"), "unit": t("chart.minutes"), "labels": labels, "series": [
            {"name": t("chart.sync_lag"), "data": [d.sync_lag_min.get(h) for h in hours]},
            {"name": t("chart.outbox_lag"), "data": [d.outbox_lag_min.get(h) for h in hours]}]},
    ]
