"""Outbound vitals ORU^R01 v2.5.1: layout, escaping, and strict validation by hl7apy."""

from __future__ import annotations

import dataclasses

import msgspec
import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from protocol import codes
from protocol.hl7.errors import BuildError
from protocol.hl7.message import parse
from protocol.hl7.oru import VitalsReport, build_vitals_oru, report_for_session
from protocol.model import Observation, Reading, SessionOpened, Subject

T0 = 1_790_000_000_000  # 2026-09-21 ... UTC


def report(**changes: object) -> VitalsReport:
    bp = Reading(at=T0, device_id="bp-1", station_id="s1", kind="blood_pressure", observations=(
        Observation(code=codes.SYSTOLIC, value=142, unit="mm[Hg]", flag="H"),
        Observation(code=codes.DIASTOLIC, value=91, unit="mm[Hg]", flag="H"),
        Observation(code=codes.PULSE, value=72, unit="/min", flag="N")))
    cuff = Reading(at=T0 - 5000, device_id="bp-1", station_id="s1", kind="cuff_pressure",
                   observations=(Observation(code=codes.CUFF_PRESSURE, value=120, unit="mm[Hg]"),))
    temp = Reading(at=T0 + 60_000, device_id="t-1", station_id="s1", kind="temperature",
                   observations=(Observation(code=codes.TEMPERATURE, value=37.4, unit="Cel", flag="H"),))
    base = VitalsReport(control_id="MCH000000000001", session_id="sess-1",
                        subject=Subject(national_id="11010519491231002X", name="王秀英", sex="2",
                                        birth_date="1949-12-31", mrn="M000123"),
                        readings=(cuff, bp, temp), created_at=T0 + 120_000, sending_facility="妇幼保健院",
                        mrn_authority="HOSP")
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_vitals_message_validates_strictly_with_hl7apy() -> None:
    raw = build_vitals_oru(report())
    msg = parse_message(raw.decode("utf-8"), validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    assert msg.validate()
    assert msg.msh.msh_9.to_er7() == "ORU^R01^ORU_R01" and msg.msh.msh_12.to_er7() == "2.5.1"
    assert msg.msh.msh_18.to_er7() == "UNICODE UTF-8"


def test_layout_pid_obr_and_one_obx_per_observation() -> None:
    m = parse(build_vitals_oru(report()))
    assert m.patient is not None
    assert [(i.id, i.authority, i.type_code) for i in m.patient.identifiers] == [
        ("M000123", "HOSP", "MR"), ("11010519491231002X", "", "NNCHN")]
    assert (m.patient.family_name, m.patient.birth_date, m.patient.sex) == ("王秀英", "19491231", "F")
    order = m.orders[0]
    assert order.service.code == "85353-1" and order.placer == "sess-1" and order.status == "F"
    rows = [(x.code.code, x.code.system, x.numeric, x.units.code, x.units.system, x.reference_range, x.flags,
             x.status) for x in order.observations]
    assert rows == [
        ("8480-6", "LN", 142.0, "mm[Hg]", "UCUM", "90-139", ("H",), "F"),
        ("8462-4", "LN", 91.0, "mm[Hg]", "UCUM", "60-89", ("H",), "F"),
        ("8867-4", "LN", 72.0, "/min", "UCUM", "60-100", ("N",), "F"),
        ("8310-5", "LN", 37.4, "Cel", "UCUM", "35.0-37.2", ("H",), "F"),
    ]
    assert order.observations[3].observed_at.endswith("+0800")
    assert order.observations[0].observed_at != order.observations[3].observed_at


def test_values_with_delimiters_are_escaped() -> None:
    s = Subject(name="A|B^C", mrn="M~1&2", national_id=None)
    m = parse(build_vitals_oru(report(subject=s)))
    assert m.patient is not None and m.patient.family_name == "A|B^C"
    assert m.patient.identifiers[0].id == "M~1&2"


@pytest.mark.parametrize(("changes", "message"), [
    ({"control_id": "X" * 21}, "control id"),
    ({"control_id": ""}, "control id"),
    ({"subject": Subject(name="x")}, "neither an MRN nor a national ID"),
    ({"readings": ()}, "no observations"),
])
def test_unbuildable_reports_raise_build_error(changes: dict[str, object], message: str) -> None:
    with pytest.raises(BuildError, match=message):
        build_vitals_oru(report(**changes))


def test_report_for_session_takes_its_own_readings_in_time_order() -> None:
    opened = SessionOpened(session_id="sess-9", station_id="s1", subject=Subject(mrn="M9", name="李娜"))
    r = report()
    mine = [msgspec.structs.replace(x, session_id="sess-9") for x in r.readings]
    other = msgspec.structs.replace(r.readings[1], session_id="sess-8")
    rep = report_for_session(opened, [mine[2], other, mine[1], mine[0]], created_at=T0, control_id="MCH1",
                             sending_facility="妇幼保健院")
    assert [x.kind for x in rep.readings] == ["blood_pressure", "temperature"]  # cuff pressure left out
    assert rep.subject.mrn == "M9" and rep.sending_facility == "妇幼保健院"
    m = parse(build_vitals_oru(rep))
    assert m.orders[0].placer == "sess-9" and len(m.orders[0].observations) == 4


def test_reference_ranges_follow_the_person_measured() -> None:
    """OBX-7: adult ranges for adults; a child's BMI gets the WHO range, her BP and pulse none (no table)."""
    import datetime as dt

    from protocol.clinical.patient import Patient
    from protocol.hl7.oru import REFERENCE_RANGES, reference_ranges_for

    obs = [Observation(code=codes.BMI, value=16.1, unit="kg/m2"), Observation(code=codes.PULSE, value=105, unit="/min"),
           Observation(code=codes.SYSTOLIC, value=100, unit="mm[Hg]"),
           Observation(code=codes.DIASTOLIC, value=62, unit="mm[Hg]")]
    day = dt.date(2026, 12, 6)
    assert reference_ranges_for(Patient(birth_date=dt.date(1970, 1, 1), sex="F"), obs, day) == REFERENCE_RANGES
    child = reference_ranges_for(Patient(birth_date=dt.date(2022, 11, 1), sex="M"), obs, day)
    low, high = (float(x) for x in child[codes.BMI].split("-"))
    assert 12.5 < low < 14.0 and 17.5 < high < 19.5  # WHO 2006 BMI-for-age, 4 years, -2 to +2 SD
    assert child[codes.SYSTOLIC] == ""  # no height: no BP class, no range
    assert child[codes.PULSE] == "65.0-131.0"  # Fleming 2011, 4-6 years, 1st-99th centile
    assert child[codes.TEMPERATURE] == REFERENCE_RANGES[codes.TEMPERATURE]
    pregnant = reference_ranges_for(Patient(birth_date=dt.date(1995, 1, 1), sex="F", pregnant_weeks=24), obs, day)
    assert pregnant[codes.BMI] == "" and pregnant[codes.SYSTOLIC] == REFERENCE_RANGES[codes.SYSTOLIC]
    raw = build_vitals_oru(report(readings=(Reading(at=T0, device_id="s", station_id="s1", kind="height_weight",
                                                    observations=(obs[0],)),), reference_ranges=child))
    assert f"|{child[codes.BMI]}|" in raw.decode("utf-8")
