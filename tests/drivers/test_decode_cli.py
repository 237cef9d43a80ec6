"""``mchub decode``: one captured frame in, JSON out; a reason on stderr for a bad frame."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from drivers.base import CardRead, Measurement
from drivers.cli import parse_hex, render
from mchub.cli import main
from protocol.model import Observation, Subject

NORDIC_BP = "1E 8A00 5800 7800 0000 0411 1429 3B 3C00 01 2700"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["decode", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_every_ble_codec(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--list")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert {"ble-bp", "ble-icp", "ble-thermometer", "ble-weight", "ble-body-composition"} <= set(names)


def test_blood_pressure_frame(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "ble-bp", NORDIC_BP)
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert doc["kind"] == "blood_pressure"
    assert doc["observations"][0] == {"code": "8480-6", "value": 138.0, "unit": "mm[Hg]",
                                      "original_value": None, "original_unit": None}
    assert doc["device_time"] is None  # Nordic's vector has year 0: unknown
    assert "irregular_pulse" in doc["status"] and doc["user_id"] == 1
    assert doc["raw"] == parse_hex(NORDIC_BP).hex()


def test_original_unit_is_kept(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "ble-weight", "01", "54 3D")  # hex may be split over arguments
    obs = json.loads(out)["observations"][0]
    assert (obs["unit"], obs["original_value"], obs["original_unit"]) == ("kg", 157.0, "[lb_av]")


@pytest.mark.parametrize(
    ("argv", "reason"),
    [(["ble-bp", "1E 7800 5000 5A00"], "ble-bp: truncated:"),
     (["ble-thermometer", "00 720100ff 00"], "ble-thermometer: overlong:"),
     (["ble-weight", "00 ffff"], "ble-weight: measurement_unsuccessful:"),
     (["ble-bp", "00 ff07 5000 5a00"], "ble-bp: invalid_value: blood pressure measurement: systolic is NaN"),
     (["ble-bp", "zz"], "not a hex frame"),
     (["ble-bp", "123"], "odd number of hex digits"),
     (["ble-bp"], "no hex digits")],
)
def test_invalid_frame_exits_1_with_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], reason: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("mchub decode: ") and reason in err


def test_unknown_codec_and_missing_codec_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "ble-glucose", "00")
    assert code == 2 and "--list" in err
    code, _, err = run(capsys)
    assert code == 2 and "--list" in err


def test_parse_hex_forms() -> None:
    assert parse_hex("0x1E8A") == b"\x1e\x8a"
    assert parse_hex("1e:8a:00") == b"\x1e\x8a\x00"
    assert parse_hex(" 1e\t8a\n") == b"\x1e\x8a"


CARD = CardRead(
    subject=Subject(national_id="11010519491231002X", name="张三丰", sex="1", address="北京市东城区某街道1号"),
    photo=b"W" * 1024, raw=b"\xaa" * 1295,
)


def test_card_read_is_masked_by_default() -> None:
    doc = render("idcard", CARD)
    assert doc["subject"]["national_id"] == "1101**********002X"
    assert doc["subject"]["name"] == "张**"
    assert doc["subject"]["address"].startswith("北京市") and "街道" not in doc["subject"]["address"]
    assert doc["photo_bytes"] == 1024 and "photo" not in doc and "raw" not in doc


def test_card_read_show_pii() -> None:
    doc = render("idcard", CARD, show_pii=True)
    assert doc["subject"]["national_id"] == "11010519491231002X" and doc["subject"]["name"] == "张三丰"
    assert "photo" not in doc


def test_flag_is_printed_when_set() -> None:
    m = Measurement(kind="temperature", observations=(Observation(code="8310-5", value=39.5, unit="Cel", flag="HH"),))
    assert render("x", m)["observations"][0]["flag"] == "HH"


def test_console_command() -> None:
    """The installed ``mchub`` entry point, as a technician runs it."""
    done = subprocess.run([sys.executable, "-m", "mchub", "decode", "ble-thermometer", "06b00e00fedc070c050b321b04"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["device_time"] == "2012-12-05T11:50:27"
