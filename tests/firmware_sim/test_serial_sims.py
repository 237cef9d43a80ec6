"""Simulators speak the published bytes, inject faults, and run from ``mchub sim``.

The ID-card simulator is checked against third-party vectors: qiwenming/IDCardDemo
README (find/select answers) and com.dlrc.idcard.IdReader (``CMD_FIND_FAIL``).
"""

from __future__ import annotations

import datetime as dt
import random

import pytest

from firmware_sim.faults import FaultPlan, parse_faults
from firmware_sim.idcard_sim import CardVisit, IdCardReaderSim
from firmware_sim.patients import make_patient
from firmware_sim.station_sim import Values, a5_encode, accutorr_encode, detecto_encode
from mchub.cli import main

FIND = bytes.fromhex("AAAAAA9669 0003 2001 22")
SELECT = bytes.fromhex("AAAAAA9669 0003 2002 21")


def test_idcard_sim_answers_with_third_party_bytes() -> None:
    p = make_patient(random.Random(1), "adult", today=dt.date(2025, 3, 1))
    sim = IdCardReaderSim(iter([CardVisit(p, gap=1, stay=1)]), FaultPlan())
    (no_card,) = sim.receive(FIND, 0.0)
    assert no_card.data == bytes.fromhex("AAAAAA9669 0004 000080 84")  # dlrc CMD_FIND_FAIL
    (found,) = sim.receive(FIND[:4], 0.0) + sim.receive(FIND[4:], 0.0)  # a command split across reads
    assert found.data == bytes.fromhex("AAAAAA9669 0008 00009F 00000000 97")  # IDCardDemo
    (selected,) = sim.receive(SELECT, 0.0)
    assert selected.data == bytes.fromhex("AAAAAA9669 000C 000090 0000000000000000 9C")  # IDCardDemo
    (bad,) = sim.receive(FIND[:-1] + b"\x00", 0.0)
    assert bad.data[9] == 0x10  # checksum error reported by the reader


def test_station_encoders_follow_the_examples() -> None:
    assert a5_encode(Values(height_cm=162.5, weight_kg=65.5)) == bytes.fromhex("A55A0703370659028F31")
    assert accutorr_encode(Values(systolic=120, diastolic=80, mean=45, pulse=85), elapsed=5) == (
        b"P:--, 85,120, 45, 80,000,000,000, 5\r\n>")
    assert detecto_encode(Values(height_cm=160.0, weight_kg=60.0)) == b"09:41,03/05/25,23.4,5'03.0\",132.3lb\r"


def test_fault_plan_by_rate_and_by_script() -> None:
    assert parse_faults("garbage=0.5,slow") == {"garbage": 0.5, "slow": 0.05}
    with pytest.raises(ValueError, match="unknown fault"):
        parse_faults("gremlins")
    scripted = FaultPlan(script=["nan", "garbage"])
    assert scripted.pick({"garbage"}) is None  # nan waits for a frame that can take it
    assert scripted.pick({"garbage", "nan"}) == "nan"
    assert scripted.pick({"garbage"}) == "garbage" and scripted.log == ["nan", "garbage"]
    always = FaultPlan({"truncate": 1.0})
    assert always.pick({"truncate", "slow"}) == "truncate" and always.pick(set()) is None


@pytest.mark.parametrize("kind", ["idcard", "station", "bp"])
def test_sim_help_explains_the_options(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["sim", kind, "--help"])
    out = capsys.readouterr().out
    assert "--faults" in out and "--tcp" in out and "hub.toml" in out


def test_sim_station_runs_a_count_of_patients_on_tcp(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "station", "--tcp", "0", "--count", "2", "--rate", "1200"]) == 0
    captured = capsys.readouterr()
    assert "tcp://127.0.0.1:" in captured.out and 'driver = "serial-station"' in captured.out
    assert 'transport = "tcp", address = "127.0.0.1", port = ' in captured.out
    assert "2 readings sent" in captured.err


def test_sim_reports_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "station", "--faults", "gremlins", "--count", "1"]) == 2
    assert "unknown fault" in capsys.readouterr().err
