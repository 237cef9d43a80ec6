"""Every result code the HL7 fixtures and the HIS/LIS simulator send has a zh-CN and an English name.

The codes are the ones the cloud stores (:mod:`cloud.integration.inbound`: the LOINC code, else
``SYSTEM:code``) after :func:`cloud.mllp.processing.process_message`; the names are
:func:`protocol.labresults.display_name`'s (a screen falls back to the sender's OBX-3.2 text only
for a code the tables lack).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cloud.mllp.processing import process_message
from firmware_sim.his import lab_message
from protocol import labresults

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hl7"
CJK = re.compile(r"[\u4e00-\u9fff]")


def _messages() -> dict[str, bytes]:
    found = {p.name: p.read_bytes().replace(b"\r\n", b"\r").replace(b"\n", b"\r") for p in FIXTURES.glob("*.hl7")}
    return {**found, "firmware_sim.his.lab_message": lab_message(1)}


@pytest.mark.parametrize("name", sorted(_messages()))
def test_every_result_code_sent_has_both_names(name: str) -> None:
    processed = process_message(_messages()[name])
    stored = [(r.loinc or f"{r.system or 'L'}:{r.code}")[:64] for r in processed.results]
    if name.startswith("ADT"):
        assert not stored
        return
    assert stored
    for code in stored:
        zh, en = labresults.display_name(code, "zh-CN"), labresults.display_name(code, "en")
        assert labresults.known(code) and CJK.search(zh) and not CJK.search(en), (code, zh, en)


def test_a_code_the_tables_lack_keeps_the_senders_text_and_is_marked_so() -> None:
    assert labresults.display_name("L:ZZZ9", "zh-CN", sent="Ferritin") == "Ferritin"
    assert not labresults.known("L:ZZZ9")
    assert labresults.display_name("99LIS:GLU", "en") == "Glucose"  # a common LIS abbreviation
    assert labresults.display_name("POST 12H CFST:MCNC:PT:SER/PLAS:QN:1554-5", "zh-CN") == "空腹血糖（12 小时）"
