"""Reconciliation: every reading the simulated devices delivered is in the cloud exactly once.

For each device the demo knows the values it sent cleanly, in order (``delivered``); the
cloud's ``readings`` table holds what arrived. Both sides become multisets of value keys
(LOINC code, value rounded to 0.1), per hub and device:

* **lost** = delivered but not in the cloud (or still queued on a hub that never drained);
* **duplicated** = in the cloud more often than delivered, plus any reading uid or
  ``(hub, epoch, seq)`` stored twice.

Card reads and nurse entries are checked the same way against the cloud's ``sessions``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from firmware_sim.station_sim import Values
from protocol import codes

Key = tuple[tuple[str, float], ...]

_FIELDS = (("height_cm", codes.HEIGHT), ("weight_kg", codes.WEIGHT), ("systolic", codes.SYSTOLIC),
           ("diastolic", codes.DIASTOLIC), ("mean", codes.MEAN_PRESSURE), ("pulse", codes.PULSE))


def key_of_values(v: Values) -> Key:
    """The comparable key of what a simulated device showed."""
    return tuple(sorted((code, round(float(getattr(v, name)), 1)) for name, code in _FIELDS
                        if getattr(v, name) is not None))


def key_of_observations(observations: str, wanted: set[str]) -> Key:
    """The comparable key of a cloud reading's observations (only the codes the device sends)."""
    items: list[dict[str, Any]] = json.loads(observations)
    return tuple(sorted((str(o["code"]), round(float(o["value"]), 1)) for o in items if o["code"] in wanted))


@dataclass
class DeviceCheck:
    """One device's comparison."""

    hub_id: str
    device_id: str
    delivered: int
    in_cloud: int
    lost: int
    duplicated: int


@dataclass
class Reconciliation:
    """The whole comparison."""

    devices: list[DeviceCheck] = field(default_factory=list)
    sessions_expected: int = 0
    sessions_in_cloud: int = 0
    duplicate_ids: int = 0  #: reading uids or (hub, epoch, seq) stored more than once
    unexpected: int = 0  #: readings in the cloud from devices the demo did not run
    flagged: int = 0  #: readings with at least one value flagged outside the normal range (H, HH, L, LL, A)

    @property
    def delivered(self) -> int:
        """Readings the devices delivered."""
        return sum(d.delivered for d in self.devices)

    @property
    def in_cloud(self) -> int:
        """Readings the cloud holds for the demo's devices."""
        return sum(d.in_cloud for d in self.devices)

    @property
    def lost(self) -> int:
        """Readings and visits missing in the cloud."""
        return sum(d.lost for d in self.devices) + max(0, self.sessions_expected - self.sessions_in_cloud)

    @property
    def duplicated(self) -> int:
        """Readings and visits stored more than once."""
        return (sum(d.duplicated for d in self.devices) + self.duplicate_ids
                + max(0, self.sessions_in_cloud - self.sessions_expected))

    @property
    def ok(self) -> bool:
        """Nothing lost, nothing duplicated, nothing unexplained."""
        return self.lost == 0 and self.duplicated == 0 and self.unexpected == 0


def compare(expected: dict[tuple[str, str], list[Values]], rows: list[dict[str, Any]],
            sessions_expected: int, sessions_in_cloud: int) -> Reconciliation:
    """Compare per device: ``expected[(hub, device)]`` against the cloud's reading rows.

    ``rows`` carry ``hub_id, epoch, seq, uid, device_id, observations``.
    """
    result = Reconciliation(sessions_expected=sessions_expected, sessions_in_cloud=sessions_in_cloud)
    uids = Counter(str(r["uid"]) for r in rows)
    ids = Counter((r["hub_id"], int(r["epoch"]), int(r["seq"])) for r in rows)
    result.duplicate_ids = sum(n - 1 for n in uids.values() if n > 1) + sum(n - 1 for n in ids.values() if n > 1)
    by_device: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        by_device.setdefault((r["hub_id"], r["device_id"]), []).append(r)
    result.unexpected = sum(len(v) for k, v in by_device.items() if k not in expected)
    result.flagged = sum(1 for r in rows
                         if any(o.get("flag") not in (None, "N") for o in json.loads(r["observations"])))
    for (hub_id, device_id), values in sorted(expected.items()):
        want = Counter(key_of_values(v) for v in values)
        wanted_codes = {code for key in want for code, _ in key}
        got = Counter(key_of_observations(r["observations"], wanted_codes)
                      for r in by_device.get((hub_id, device_id), []))
        lost = sum((want - got).values())
        duplicated = sum((got - want).values())
        result.devices.append(DeviceCheck(hub_id, device_id, len(values), sum(got.values()), lost, duplicated))
    return result
