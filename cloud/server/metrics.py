"""Prometheus metrics of the cloud server.

With several worker processes, ``mchub cloud serve`` sets ``PROMETHEUS_MULTIPROC_DIR``
before the workers start, and /metrics aggregates every worker's counters
(prometheus_client multiprocess mode). Queue depths and hub presence are read from the
database at scrape time, so any worker answers for the whole deployment.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

BATCHES = Counter("mchub_batches_total", "Sync batches answered, by outcome", ["outcome"])
RECORDS = Counter("mchub_records_total", "New records stored (readings, sessions, bindings)")
READINGS = Counter("mchub_readings_total", "New readings stored")
REJECTS = Counter("mchub_rejects_total", "Batches refused, by reason code (docs/protocol.md)", ["reason"])
LATENCY = Histogram("mchub_ingest_seconds", "Time from request body received to ack signed",
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0))
INFLIGHT = Gauge("mchub_ingest_inflight", "Batches being stored now", multiprocess_mode="livesum")
WAITING = Gauge("mchub_ingest_waiting", "Batches waiting for an ingest slot", multiprocess_mode="livesum")
MQTT_MESSAGES = Counter("mchub_mqtt_messages_total", "Hub status/telemetry messages received", ["kind"])

CONTENT_TYPE = CONTENT_TYPE_LATEST


def render(db_gauges: dict[str, tuple[str, dict[tuple[str, ...], float], tuple[str, ...]]]) -> bytes:
    """Exposition text: this process's (or all workers') metrics plus gauges read from the DB.

    ``db_gauges`` maps metric name -> (help, {label values: value}, label names).
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        text = generate_latest(registry)
    else:
        from prometheus_client import REGISTRY

        text = generate_latest(REGISTRY)
    extra = CollectorRegistry()
    for name, (help_, values, labels) in db_gauges.items():
        gauge = Gauge(name, help_, list(labels), registry=extra)
        for label_values, value in values.items():
            (gauge.labels(*label_values) if labels else gauge).set(value)
    return text + generate_latest(extra)
