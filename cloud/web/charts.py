"""The dashboard's three charts over the last 24 hours, as data for ECharts (drawn in the browser).

* **traffic** — per hour in and out: records stored from hubs, HL7 frames received, HIS
  messages and MCH uploads queued (from the queues and ``hl7_inbound``);
* **errors** — per hour error rate in %: HL7 frames answered with an error or rejected, sync
  batches refused, outbound messages that became dead letters (an hour with nothing
  received shows no point, not 0 %);
* **lag** — per hour the worst sync lag of an online hub with a backlog, and the age of the
  oldest pending outbound message, in minutes (the samples ``sync.lag_s``/``outbox.lag_s``).

Each chart is ``{"id", "title", "unit", "labels", "series": [{"name", "data"}]}``: hours
oldest first labelled ``MM-DD HH:00`` in China time; the page passes them in a JSON script
block that ``cloud/web/static/charts.js`` hands to the vendored ECharts (docs/dashboard.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cloud.db.engine import Tx
from cloud.web.queues import HOUR_MS, Queue, hour_label, increases

_METRICS = ("sync.batches", "outbox.dead", "sync.lag_s", "outbox.lag_s")
_SAMPLES = ("SELECT metric, minute / 60 AS h, MIN(value) AS lo, MAX(value) AS hi FROM dashboard_samples "
            "WHERE metric IN ('sync.batches', 'outbox.dead', 'sync.lag_s', 'outbox.lag_s') AND minute >= $1 "
            "GROUP BY metric, minute / 60 ORDER BY metric, h")
_HL7 = ("SELECT received_ms / 3600000 AS h, COUNT(*) AS n, SUM(CASE WHEN ack_code IN ('AA', 'CA') THEN 0 ELSE 1 END) "
        "AS bad FROM hl7_inbound WHERE received_ms >= $1 GROUP BY received_ms / 3600000")
_REFUSED = ("SELECT at_ms / 3600000 AS h, COUNT(*) AS n FROM audit_log WHERE action IN ('batch.refused', 'batch.gap') "
            "AND at_ms >= $1 GROUP BY at_ms / 3600000")


def _rate(bad: float | None, total: float | None) -> float | None:
    """Percent of ``total`` that went wrong; None (no point) when nothing came."""
    if not total:
        return None
    return round(100.0 * (bad or 0.0) / total, 1)


async def build(tx: Tx, now: int, queues: list[Queue], t: Callable[[str], str]) -> list[dict[str, Any]]:
    """The traffic, error-rate and lag charts (``queues``: sync, his, mch as the page loaded them)."""
    first = now // HOUR_MS - 23
    hours = list(range(first, first + 24))
    by_metric: dict[str, list[Any]] = {m: [] for m in _METRICS}
    for r in await tx.fetch(_SAMPLES, (first - 1) * 60):
        by_metric[r["metric"]].append(r)
    batches = {int(r["h"]): float(r["n"]) for r in increases(by_metric["sync.batches"])}
    died = {int(r["h"]): float(r["n"]) for r in increases(by_metric["outbox.dead"])}
    lag = {m: {int(r["h"]): round(float(r["hi"]) / 60, 1) for r in by_metric[m]}  # minutes, worst of the hour
           for m in ("sync.lag_s", "outbox.lag_s")}
    hl7_rows = await tx.fetch(_HL7, first * HOUR_MS)
    hl7_in = {int(r["h"]): float(r["n"]) for r in hl7_rows}
    hl7_bad = {int(r["h"]): float(r["bad"] or 0) for r in hl7_rows}
    refused = {int(r["h"]): float(r["n"]) for r in await tx.fetch(_REFUSED, first * HOUR_MS)}
    rates = {q.key: [v for _, v in q.rates[-24:]] for q in queues}
    out = [sum(v) for v in zip(rates["his"], rates["mch"], strict=True)]
    labels = [hour_label(h) for h in hours]
    return [
        {"id": "traffic", "title": t("chart.traffic"), "unit": t("chart.per_hour"), "labels": labels, "series": [
            {"name": t("chart.sync_in"), "data": rates["sync"]},
            {"name": t("chart.hl7_in"), "data": [hl7_in.get(h, 0.0) for h in hours]},
            {"name": t("chart.his_out"), "data": rates["his"]},
            {"name": t("chart.mch_out"), "data": rates["mch"]}]},
        {"id": "errors", "title": t("chart.errors"), "unit": "%", "labels": labels, "series": [
            {"name": t("chart.hl7_errors"), "data": [_rate(hl7_bad.get(h), hl7_in.get(h)) for h in hours]},
            {"name": t("chart.sync_refused"),
             "data": [_rate(refused.get(h), batches.get(h, 0.0) + refused.get(h, 0.0)) for h in hours]},
            {"name": t("chart.out_dead"), "data": [_rate(died.get(h), n) for h, n in zip(hours, out, strict=True)]}]},
        {"id": "lag", "title": t("chart.lag"), "unit": t("chart.minutes"), "labels": labels, "series": [
            {"name": t("chart.sync_lag"), "data": [lag["sync.lag_s"].get(h) for h in hours]},
            {"name": t("chart.outbox_lag"), "data": [lag["outbox.lag_s"].get(h) for h in hours]}]},
    ]

