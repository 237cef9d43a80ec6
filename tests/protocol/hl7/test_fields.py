"""The field-name table and the field tree of the message browser (protocol.hl7.fields)."""

from __future__ import annotations

import re

from protocol.hl7.field_names_zh import FIELD_NAMES_ZH
from protocol.hl7.fields import FIELD_NAMES, field_name, field_tree, segment_lines
from tests.protocol.hl7.conftest import FILES, load

MSG = (b"MSH|^~\\&|LIS|HOSP|MCHUB||20250301101500||ORU^R01^ORU_R01|C42|P|2.5.1|||AL|NE||UNICODE UTF-8\r"
       b"PID|1||MRN7^^^HOSP^MR~110101199003071234^^^CHN^NNCHN||\xe5\xbc\xa0^\xe4\xb8\x89||19900307|F\r"
       b"OBR|1|P1|F1|718-7^Hemoglobin^LN\r"
       b"OBX|1|NM|718-7^Hemoglobin^LN||9.8|g/dL|12.0-16.0|L|||F\r"
       b"NTE|1||a \\T\\ b\r")


def test_names_come_from_the_standard() -> None:
    assert field_name("MSH", 10) == "Message Control ID"
    assert field_name("PID", 3) == "Patient Identifier List"
    assert field_name("OBX", 5) == "Observation Value"
    assert field_name("ERR", 3) == "HL7 Error Code"
    assert field_name("MSA", 1) == "Acknowledgment Code"
    assert field_name("MRG", 1) == "Prior Patient Identifier List"
    assert field_name("SPM", 4) == "Specimen Type"
    assert field_name("OBX", 99) == "" and field_name("ZZZ", 1) == "" and field_name("PID", 0) == ""
    for seg in ("MSH", "EVN", "PID", "PV1", "ORC", "OBR", "OBX", "SPM", "NTE", "MSA", "ERR", "MRG"):
        assert seg in FIELD_NAMES
    # lengths per HL7 v2.5.1: a shifted name would show every field of the segment wrong
    assert len(FIELD_NAMES["OBX"]) == 19 and len(FIELD_NAMES["MSH"]) == 21 and len(FIELD_NAMES["PID"]) == 39


def test_every_field_name_has_a_zh_cn_name_in_the_same_place() -> None:
    assert FIELD_NAMES_ZH.keys() == FIELD_NAMES.keys()
    for seg, names in FIELD_NAMES.items():
        zh = FIELD_NAMES_ZH[seg]
        assert len(zh) == len(names), seg  # one shifted name would name every later field wrong
        for n, (en, cn) in enumerate(zip(names, zh, strict=True), 1):
            assert re.search(r"[\u4e00-\u9fff]", cn), (f"{seg}-{n}", en, cn)
            # no English left but the codes the glossary allows (ID, HL7)
            assert not re.search(r"[A-Za-z]{2,}", re.sub(r"ID|HL7", "", cn)), (f"{seg}-{n}", cn)
    assert (field_name("PID", 5, "zh-CN"), field_name("OBX", 5, "zh-CN"), field_name("MSH", 10, "zh-CN")) == \
        ("患者姓名", "观察值", "消息控制ID")
    assert (field_name("PID", 3, "zh-CN"), field_name("OBX", 3, "zh-CN"), field_name("ERR", 3, "zh-CN")) == \
        ("患者标识符列表", "观察标识符", "HL7错误代码")
    assert field_name("ZZZ", 1, "zh-CN") == "" and field_name("PID", 99, "zh-CN") == ""


def test_tree_has_segments_fields_repetitions_and_components() -> None:
    tree = field_tree(MSG)
    assert [s.name for s in tree.segments] == ["MSH", "PID", "OBR", "OBX", "NTE"] and not tree.cut
    msh = tree.segments[0]
    assert msh.fields[0].label == "MSH-1" and msh.fields[0].raw == "|"
    assert next(f for f in msh.fields if f.position == 10).raw == "C42"
    pid3 = next(f for f in tree.segments[1].fields if f.position == 3)
    assert pid3.name == "Patient Identifier List" and pid3.name_zh == "患者标识符列表" and len(pid3.repetitions) == 2
    assert [c.value for c in pid3.repetitions[1]][-1] == "NNCHN"
    name = next(f for f in tree.segments[1].fields if f.position == 5)
    assert [c.value for c in name.repetitions[0]] == ["张", "三"]
    assert all(f.raw for s in tree.segments for f in s.fields)  # empty fields are left out
    nte = next(f for f in tree.segments[4].fields if f.position == 3)
    assert nte.repetitions[0][0].value == "a & b"  # unescaped


def test_tree_is_cut_at_the_bound() -> None:
    tree = field_tree(MSG, max_segments=2)
    assert len(tree.segments) == 2 and tree.cut


def test_every_fixture_makes_a_tree() -> None:
    for name in FILES:
        tree = field_tree(load(name))
        assert tree.segments[0].name == "MSH"


def test_segment_lines_decode_and_split() -> None:
    lines = segment_lines(MSG.replace(b"\r", b"\r\n"))
    assert lines[0].startswith("MSH|^~\\&|LIS") and "张^三" in lines[1] and len(lines) == 5
    assert segment_lines(b"not hl7\nat all") == ["not hl7", "at all"]
