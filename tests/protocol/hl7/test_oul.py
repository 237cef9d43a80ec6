"""OUL^R22 / OUL^R24 lab results read like ORU^R01 (issue 16 finding 7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.mllp.processing import process_message
from protocol.hl7.errors import MissingField, UnsupportedMessage
from protocol.hl7.message import INBOUND, check, parse
from tests.protocol.hl7.conftest import FIXTURES

OTHER = Path(FIXTURES) / "other"

#: a Chinese LIS result as OUL^R22: specimen group (SPM + a specimen OBX), then the order and its results
OUL_R22 = (
    "MSH|^~\\&|LIS|检验科|MCHUB|妇幼|20260301101010||OUL^R22^OUL_R22|R22-1|P|2.5.1||||||UNICODE UTF-8\r"
    "PID|1||330102199003070211^^^^NNCHN~M0001^^^HOSP^MR||王^秀英||19900307|F\r"
    "SPM|1|S0001||CVS^宫颈脱落细胞^L\r"
    "OBX|1|ST|SPMQ^标本性状^L||合格||||||F\r"
    "OBR|1||S0001|HPV^HPV分型^L|||20260301090000\r"
    "OBX|1|ST|HPV16^HPV16^L||阴性||||||F\r"
    "OBX|2|ST|HPV18^HPV18^L||阳性||||||F\r"
    "SPM|2|S0002||BLD^全血^L\r"
    "OBR|2||S0002|CBC^血常规^L\r"
    "OBX|1|NM|6690-2^WBC^LN||6.5|10*9/L|3.5-9.5||||F\r"
)
#: OUL^R24: order first, the specimen inside it, the results after
OUL_R24 = (
    "MSH|^~\\&|LIS|检验科|MCHUB|妇幼|20260301101010||OUL^R24^OUL_R24|R24-1|P|2.5.1||||||GB18030\r"
    "PID|1||M0001^^^HOSP^MR||王^秀英\r"
    "OBR|1||S0003|CBC^血常规^L\r"
    "SPM|1|S0003||BLD^全血^L\r"
    "OBX|1|NM|6690-2^WBC^LN||6.5|10*9/L|3.5-9.5||||F\r"
    "OBX|2|NM|718-7^Hb^LN||128|g/L|115-150||||F\r"
)


def test_oul_is_an_inbound_type() -> None:
    assert INBOUND["OUL"] == frozenset({"R22", "R24"})


def test_r22_specimen_observations_are_not_results() -> None:
    m = parse(OUL_R22.encode())
    assert [[x.code.code for x in o.observations] for o in m.orders] == [["HPV16", "HPV18"], ["6690-2"]]
    p = process_message(OUL_R22.encode())
    assert p.message_type == "OUL^R22"
    assert [(r.code, r.category, r.interpretation) for r in p.results][:2] == [
        ("HPV16", "hpv", "negative"), ("HPV18", "hpv", "positive")]
    assert p.patient.national_id == "330102199003070211"
    assert p.results[2].numeric == 6.5


def test_r24_results_follow_the_specimen_inside_the_order() -> None:
    raw = OUL_R24.encode("gb18030")
    p = process_message(raw)
    assert p.message_type == "OUL^R24"
    assert [(r.code, r.numeric) for r in p.results] == [("6690-2", 6.5), ("718-7", 128.0)]
    assert check(raw).control_id == "R24-1"


def test_oul_without_an_order_is_an_error() -> None:
    raw = OUL_R22.split("OBR|1")[0].encode()
    with pytest.raises(MissingField, match="OUL\\^R22 without an OBR"):
        parse(raw)


def test_other_oul_events_are_still_refused() -> None:
    with pytest.raises(UnsupportedMessage):
        check(OUL_R22.replace("OUL^R22^OUL_R22", "OUL^R23").encode())


@pytest.mark.parametrize(("name", "location"), [("OUL-R22-01.hl7", "OBX^12^3"), ("OUL-R24-01.hl7", "OBX^8^3")])
def test_the_public_oul_samples_pass_the_type_check_and_fail_on_their_empty_obx3(name: str, location: str) -> None:
    """FHIR-Converter's OUL samples (a converter's test data) carry an OBX without OBX-3: AE naming it."""
    raw = (OTHER / name).read_bytes().strip().replace(b"\n", b"\r") + b"\r"
    with pytest.raises(MissingField) as err:
        check(raw)
    assert (err.value.location, err.value.ack_code) == (location, "AE")
