"""Hub presence from every signal: a batch, telemetry, or an MQTT session, within a window.

``hubs.online`` is what the dashboard, the hub list and ``/metrics`` show. It turns on
with every accepted batch (:func:`on_batch`, which also moves ``last_seen_ms``), every
telemetry or status message (:mod:`cloud.fleet.mqtt`), and turns off when none of them was seen
for ``[fleet] presence_window_s`` (:func:`sweep`, run by every worker; idempotent), or at
once when the broker publishes the hub's last will and the hub has not synced within the
window (telemetry-based presence ends with the MQTT session; a syncing hub stays online).

An accepted batch also carries what the hub reports about its configuration push
(``X-Mchub-Config-Applied``, ``X-Mchub-Devices-Down``, see docs/edge.md): kept in
``hubs.config_applied`` and ``hubs.devices_down`` (migration 15) for the admin console.
Those headers come with a batch the cloud has just verified as signed by the hub; they
are bounded and checked before they are stored, and only ever displayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

from cloud.db.engine import Database, Tx
from cloud.errors import CloudError
from protocol.ids import now_ms

log = logging.getLogger("mchub.cloud.fleet.presence")

APPLIED_HEADER = "X-Mchub-Config-Applied"
DOWN_HEADER = "X-Mchub-Devices-Down"
MAX_DOWN = 64  #: device ids kept per hub
MAX_DOWN_CHARS = 2048  #: a longer header is ignored, not truncated
_DEVICE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def down_list(value: str | None) -> str | None:
    """The checked, comma-separated device ids of ``X-Mchub-Devices-Down`` (None: absent or malformed)."""
    if value is None or len(value) > MAX_DOWN_CHARS:
        return None
    ids = [v for v in value.split(",") if v] if value else []
    if len(ids) > MAX_DOWN or not all(_DEVICE_ID.fullmatch(i) for i in ids):
        return None
    return ",".join(ids)


def down_from_telemetry(devices: Mapping[str, str]) -> str:
    """Device ids whose telemetry summary is not "connected" (bounded like the header)."""
    ids = sorted(d for d, state in devices.items() if state != "connected" and _DEVICE_ID.fullmatch(d))
    return ",".join(ids[:MAX_DOWN])


@dataclass(frozen=True)
class Report:
    """What a batch's headers say about the hub's configuration push, checked (None: absent or malformed)."""

    applied: int | None = None  #: ``X-Mchub-Config-Applied``
    down: str | None = None  #: ``X-Mchub-Devices-Down``, see :func:`down_list`

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Report:
        """The report carried by a batch's HTTP headers."""
        applied = headers.get(APPLIED_HEADER, "")
        return cls(int(applied) if applied.isdigit() and len(applied) < 10 else None,
                   down_list(headers.get(DOWN_HEADER)))


#: an accepted batch: the hub is online, seen now, with its configuration report. The
#: ingest runs it in the batch's own store transaction (PostgreSQL: the same statement,
#: cloud/db/pg_ingest.py, which repeats this SET), so an ack costs one commit, not two
SEEN = ("UPDATE hubs SET online = TRUE, last_seen_ms = $1, config_applied = COALESCE($2, config_applied), "
        "devices_down = COALESCE($3, devices_down) WHERE hub_id = $4 AND status = 'active'")
CONFIG_VERSION = "SELECT version FROM hub_config_versions WHERE hub_id = $1"


async def on_batch(tx: Tx, hub_id: str, report: Report, at_ms: int | None = None) -> int:
    """An accepted batch (in the caller's transaction): the hub is online, seen now, its
    configuration report kept; returns the hub's current configuration version (0: none)."""
    await tx.execute(SEEN, at_ms or now_ms(), report.applied, report.down, hub_id)
    return int(await tx.fetchval(CONFIG_VERSION, hub_id) or 0)


async def sweep(db: Database, window_s: float, at_ms: int | None = None) -> int:
    """Turn off hubs with no batch, telemetry or status message within the window; returns how many."""
    cutoff = (at_ms or now_ms()) - int(window_s * 1000)
    async with db.transaction() as tx:
        n = await tx.execute("UPDATE hubs SET online = FALSE WHERE online AND COALESCE(last_seen_ms, 0) < $1",
                             cutoff)
    return n


async def run_sweeper(db: Database, window_s: float, stop: asyncio.Event) -> None:
    """Sweep every tenth of the window until ``stop``."""
    every = max(1.0, window_s / 10)
    while not stop.is_set():
        try:
            await sweep(db, window_s)
        except CloudError as exc:
            log.warning("hub presence sweep failed (retried in %.0f s): %s", every, exc)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(every):
                await stop.wait()

