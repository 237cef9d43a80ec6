"""The demo's reconciliation: lost and duplicated readings are found per device."""

from __future__ import annotations

import json

from firmware_sim.station_sim import Values
from mchub.demo.reconcile import compare


def row(seq: int, device: str, obs: list[tuple[str, float]], uid: str | None = None) -> dict[str, object]:
    return {"hub_id": "H", "epoch": 1, "seq": seq, "uid": uid or f"u{seq}", "device_id": device,
            "observations": json.dumps([{"code": c, "value": v, "unit": "x"} for c, v in obs])}


BP = Values(systolic=120, diastolic=80, mean=93, pulse=70)
BP2 = Values(systolic=150, diastolic=95, mean=113, pulse=88)
HW = Values(height_cm=160.2, weight_kg=55.0)


def bp_row(seq: int, v: Values, uid: str | None = None) -> dict[str, object]:
    return row(seq, "bp", [("8480-6", v.systolic), ("8462-4", v.diastolic), ("8478-0", v.mean),  # type: ignore[list-item]
                           ("8867-4", v.pulse)], uid)


def test_everything_once_is_ok_and_extra_codes_are_ignored() -> None:
    rows = [bp_row(1, BP), row(2, "hw", [("8302-2", 160.2), ("29463-7", 55.0), ("39156-5", 21.4)])]
    rec = compare({("H", "bp"): [BP], ("H", "hw"): [HW]}, rows, 1, 1)
    assert rec.ok and rec.delivered == rec.in_cloud == 2


def test_a_missing_reading_is_lost_and_a_repeated_one_duplicated() -> None:
    rec = compare({("H", "bp"): [BP, BP2]}, [bp_row(1, BP), bp_row(2, BP)], 1, 1)
    assert (rec.lost, rec.duplicated) == (1, 1) and not rec.ok
    assert rec.devices[0].lost == 1 and rec.devices[0].duplicated == 1


def test_the_same_uid_twice_and_missing_or_extra_visits_count() -> None:
    rec = compare({("H", "bp"): [BP, BP]}, [bp_row(1, BP, "same"), bp_row(2, BP, "same")], 3, 2)
    assert rec.duplicate_ids == 1 and rec.lost == 1 and rec.duplicated == 1


def test_readings_from_devices_the_demo_did_not_run_are_unexpected() -> None:
    rec = compare({}, [bp_row(1, BP)], 0, 0)
    assert rec.unexpected == 1 and not rec.ok
