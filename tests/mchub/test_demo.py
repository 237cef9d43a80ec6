"""``mchub demo --duration``: the README's first command, end to end, as a user runs it.

One bounded run (cloud on SQLite, two hubs, four stations of serial devices on ptys, one
hub offline for a while): the summary must show readings synced, none lost and none
duplicated, vitals accepted by the HIS simulator and cases by the MCH platform simulator.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bounded_demo_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    work = tmp_path / "work"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mchub",
            "demo",
            "--duration",
            "24",
            "--offline-at",
            "5",
            "--offline-for",
            "8",
            "--pace",
            "1",
            "--workdir",
            str(work),
            "--summary-json",
            str(summary),
            "--plain",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    out = result.stdout + result.stderr
    assert summary.exists(), out
    doc = json.loads(summary.read_text(encoding="utf-8"))
    assert result.returncode == 0, out
    assert doc["lost"] == 0 and doc["duplicated"] == 0 and doc["unexpected"] == 0, out
    assert doc["readings_in_cloud"] == doc["readings_delivered"] > 0, out
    assert doc["visits_in_cloud"] == doc["visits_opened"] > 0, out
    assert doc["offline_spells"] == 1 and doc["undrained"] == []
    assert set(doc["patients"]) == {"adult", "pregnant", "child"}, doc["patients"]
    his, mch = doc["peers"]["HIS (HL7)"], doc["peers"]["妇幼 MCH"]
    assert his["available"] and his["delivered"] >= 1, out  # vitals ORU^R01 accepted by the HIS
    assert his["results_acked"] >= 1, out  # lab results the HIS sent were ACKed by the cloud
    assert mch["available"] and mch["delivered"] >= 1, out  # cases accepted by the MCH platform
    pacs = doc["peers"]["PACS"]  # studies stored by STOW-RS with the simulator's own sender credential
    assert pacs["available"] and pacs["refused"] == 0 and pacs["instances"] == 2 * pacs["studies"], out
    assert "汇总 summary" in out and "lost" in out
    judged_by_their_own_references(work)
    # every child process is gone: no hub or cloud still listens in the work directory's logs' names
    leftovers = subprocess.run(["pgrep", "-f", str(work)], capture_output=True, text=True).stdout.split()
    assert leftovers == [], f"processes left behind: {leftovers}"


def test_help_explains_the_demo() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mchub", "demo", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0
    for words in ("--duration", "--workdir", "--postgres", "exit codes", "Ctrl-C"):
        assert words in result.stdout


@pytest.mark.slow
def test_ctrl_c_winds_down_with_a_summary_and_stops_every_child(tmp_path: Path) -> None:
    work = tmp_path / "work"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mchub", "demo", "--workdir", str(work), "--pace", "1", "--plain"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:  # run until the first progress line after the URLs
        lines.append(line)
        if "patients" in line and lines and any("打开 open" in x for x in lines):
            break
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=180)
    text = "".join(lines) + out
    assert proc.returncode == 0, text
    assert "Ctrl-C" in text and "汇总 summary" in text
    leftovers = subprocess.run(["pgrep", "-f", str(work)], capture_output=True, text=True).stdout.split()
    assert leftovers == [], f"processes left behind: {leftovers}"


def judged_by_their_own_references(work: Path) -> None:
    """On the hubs' own records, every value judged by the reference of the person measured: a child's
    pulse by her age's centiles (Fleming 2011), her BMI by WHO's BMI-for-age, her blood pressure by the
    2017 Chinese children's table for her sex, age and height (under 3 years, no class), her temperature
    by site and age (NICE NG143 for infants); a pregnant woman's blood pressure by the pregnancy classes
    and her BMI not judged. Never an adult cut-off for either."""
    import sqlite3

    from edge.sessions import local_day, patient_of
    from edge.store.bodies import decode_body
    from protocol import codes
    from protocol.clinical import child_bp, growth, heart_rate, temperature
    from protocol.clinical.pregnancy import classify_bp

    children = pregnant = 0
    judged: set[str] = set()
    for db in work.glob("*/data/hub.db"):
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            rows = conn.execute(
                "SELECT s.opened_at, s.age_days, s.sex, s.pregnant_weeks, s.height_cm, r.at, r.body FROM records r "
                "JOIN sessions s ON s.session_id = r.session_id WHERE r.type = 0"
            ).fetchall()
        finally:
            conn.close()
        for opened_at, age_days, sex, weeks, session_height, at, body in rows:
            reading = decode_body(body)
            flags = {o.code: o.flag for o in reading.observations}
            values = {o.code: o.value for o in reading.observations}
            patient = patient_of(opened_at, age_days, sex, weeks)
            day = local_day(at)  # the hub's record time (the body's own time may be the device's clock)
            age = patient.age_days(day)
            if age is not None and age < 18 * 365:
                children += 1
                if codes.PULSE in values:  # her age's heart-rate centiles (Fleming 2011), never the adult 60-100
                    assert flags[codes.PULSE] == heart_rate.classify(age, values[codes.PULSE]).flag, flags
                    judged.add("child pulse")
                if codes.BMI in values and patient.sex is not None:  # WHO BMI-for-age, never the adult 18.5-23.9
                    g = growth.bmi_for_age(patient.sex, age, values[codes.BMI])
                    assert flags[codes.BMI] == (g.flag if g is not None else None), (age, values, flags)
                    judged.add("child BMI")
                if codes.SYSTOLIC in values:
                    years = patient.age_years(day)
                    if years is None or years < 3:  # below the children's BP table: the value only
                        assert flags.get(codes.SYSTOLIC) is None, flags
                    elif flags.get(codes.SYSTOLIC) is not None:  # judged once her height is known
                        c = child_bp.classify(
                            patient.sex or "",
                            years,
                            session_height or 0,
                            values[codes.SYSTOLIC],
                            values[codes.DIASTOLIC],
                        )
                        assert c is not None and flags[codes.SYSTOLIC] == c.flag, (years, values, flags)
                        judged.add("child BP")
                if codes.TEMPERATURE in values:
                    t = temperature.classify(values[codes.TEMPERATURE], temperature.site_of(reading.status), age)
                    assert flags[codes.TEMPERATURE] == t.flag, (age, values, flags)
                    judged.add("child temperature")
            elif weeks is not None and codes.SYSTOLIC in values:
                pregnant += 1
                expected = classify_bp(values[codes.SYSTOLIC], values[codes.DIASTOLIC], weeks).flag
                assert flags[codes.SYSTOLIC] == expected, (weeks, values, flags)
                judged.add("pregnancy BP")
            if weeks is not None and codes.BMI in values:  # BMI is not judged in pregnancy (WS/T 801-2022 instead)
                assert flags.get(codes.BMI) is None, (weeks, values, flags)
    assert children and pregnant, (children, pregnant)
    assert {"child pulse", "child BMI", "pregnancy BP"} <= judged, judged
