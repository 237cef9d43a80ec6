"""The short soak (CI): 150 virtual hubs and a real hub against two cloud workers on PostgreSQL
for 12 s; everything reconciles, the hub's queue drains, memory does not grow grossly.
The long soak is ``python3 dev.py soak --minutes 30 --hubs 3000 --interval 120`` (docs/reliability.md)."""

from __future__ import annotations

import pytest

from bench.soak import run


@pytest.mark.slow
def test_short_soak_reconciles_and_memory_stays_flat() -> None:
    figures = run(seconds=12, hubs=150, interval=4.0, sample_s=1.0)
    assert figures["reconciled"] == 1.0
    assert figures["queues drained"] == 1.0
    assert figures["memory flat"] == 1.0, figures
