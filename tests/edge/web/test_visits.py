"""The status page's lists (edge/web/visits.py): values with stored flags, the short bind list, sync stuck."""

from __future__ import annotations

from edge.web import visits as v
from protocol import codes


def reading(at: int, *obs: tuple[str, float, str, str | None]) -> dict[str, object]:
    return {"at": at, "device_id": "bp-1",
            "observations": [{"code": c, "value": x, "unit": u, "flag": f} for c, x, u, f in obs]}


def session(sid: str, station: str, opened_at: int) -> dict[str, object]:
    return {"session_id": sid, "station_id": station, "opened_at": opened_at, "closed_at": None,
            "close_reason": None, "name_masked": "王*", "id_masked": "", "pregnant_weeks": None}


def test_values_use_the_flags_stored_for_the_person_and_the_worst_of_a_blood_pressure() -> None:
    got = v.values([reading(1, (codes.SYSTOLIC, 150, "mm[Hg]", "H"), (codes.DIASTOLIC, 112, "mm[Hg]", "HH"),
                            (codes.PULSE, 105, "/min", None)),
                    reading(2, (codes.WEIGHT, 17.04, "kg", "N"))])
    assert got == (v.Value("obs.bp", "150/112", "mm[Hg]", "HH"), v.Value("obs.8867-4", "105", "/min", None),
                   v.Value("obs.29463-7", "17.0", "kg", "N"))
    [visit] = v.visits([session("s1", "room-1", 1)], {"s1": [reading(1, (codes.PULSE, 99, "/min", "H"))]})
    assert visit.flagged and visit.is_open


def test_bind_offers_only_the_stations_visits_nearest_in_time_five_at_most() -> None:
    today = v.visits([session(f"a{i}", "room-1", i * 60_000) for i in range(10)]
                     + [session("b", "room-2", 300_000)], {})
    choices = v.bind_choices({"station_id": "room-1", "at": 300_000 + 1}, today)
    assert [c.session_id for c in choices] == ["a5", "a6", "a4", "a7", "a3"]  # nearest first, none of room-2


def test_sync_is_stuck_when_records_wait_long_and_sync_fails_or_stopped() -> None:
    assert v.sync_stuck(None, None, "blocked")
    assert v.sync_stuck(v.STUCK_AFTER_S, "cloud unreachable", "backoff")
    assert not v.sync_stuck(v.STUCK_AFTER_S - 1, "cloud unreachable", "backoff")  # not long yet
    assert not v.sync_stuck(3600, None, "idle")  # waiting but nothing failed (no cloud address)


def test_the_kiosk_highlights_the_first_step_not_done_or_the_one_measuring_now() -> None:
    from types import SimpleNamespace

    from edge.web.steps import steps

    devices = [SimpleNamespace(id="card-1", driver="idcard"), SimpleNamespace(id="scale-1", driver="serial-station"),
               SimpleNamespace(id="bp-1", driver="sim-ble-bp")]
    assert [(s.name, s.state) for s in steps(devices, False, ())] == [
        ("card", "next"), ("height_weight", "todo"), ("bp", "todo")]
    assert [s.state for s in steps(devices, True, ())] == ["done", "next", "todo"]
    assert [s.state for s in steps(devices, True, (), measuring="bp")] == ["done", "todo", "next"]  # cuff inflating
    bp_done = [{"device_id": "bp-1", "observations": [{"code": codes.SYSTOLIC}]}]
    assert [s.state for s in steps(devices, True, bp_done)] == ["done", "next", "done"]
