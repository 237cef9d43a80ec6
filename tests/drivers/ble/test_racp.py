"""Record Access Control Point requests and responses."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.ble import racp
from drivers.ble.errors import BadRacpResponse
from drivers.errors import FrameError


def test_requests() -> None:
    assert racp.report_all() == bytes([1, 1])
    assert racp.delete_all() == bytes([2, 1])
    assert racp.abort() == bytes([3, 0])
    assert racp.report_number_all() == bytes([4, 1])


# NordicSemiconductor/Android-BLE-Common-Library,
# ble-common/src/test/java/no/nordicsemi/android/ble/common/callback/RecordAccessControlPointDataCallbackTest.java
@pytest.mark.parametrize(
    ("frame", "opcode", "code", "ok"),
    [
        ([6, 0, 1, 1], 1, racp.SUCCESS, True),
        ([6, 0, 12, 2], 12, racp.OP_CODE_NOT_SUPPORTED, False),
        ([6, 0, 1, 3], 1, racp.INVALID_OPERATOR, False),
        ([6, 0, 2, 4], 2, racp.OPERATOR_NOT_SUPPORTED, False),
        ([6, 0, 1, 5], 1, racp.INVALID_OPERAND, False),
        ([6, 0, 1, 6], 1, racp.NO_RECORDS_FOUND, True),
        ([6, 0, 3, 7], 3, racp.ABORT_UNSUCCESSFUL, False),
        ([6, 0, 2, 8], 2, racp.PROCEDURE_NOT_COMPLETED, False),
        ([6, 0, 2, 9], 2, racp.OPERAND_NOT_SUPPORTED, False),
        ([6, 0, 1, 10], 1, 10, False),
    ],
)
def test_nordic_response_codes(frame: list[int], opcode: int, code: int, ok: bool) -> None:
    answer = racp.parse_response(bytes(frame))
    assert answer == racp.ResponseCode(request=opcode, code=code)
    assert isinstance(answer, racp.ResponseCode) and answer.ok == ok and answer.text


@pytest.mark.parametrize(("frame", "count"), [([5, 0, 1], 1), ([5, 0, 2, 1], 258), ([5, 0, 4, 3, 2, 1], 16909060)])
def test_nordic_number_of_records(frame: list[int], count: int) -> None:
    assert racp.parse_response(bytes(frame)) == racp.NumberOfRecords(count)


@pytest.mark.parametrize(
    "frame",
    [[5, 0, 3, 2, 1],  # unsupported operand length
     [1, 1],  # a request, not a response
     [1, 3, 1, 2, 0],  # wrong op code
     [6, 1, 1],  # operator must be null
     [6, 0, 1], [6, 0, 1, 1, 0], [], [6]],
)
def test_invalid_responses(frame: list[int]) -> None:
    with pytest.raises(BadRacpResponse) as err:
        racp.parse_response(bytes(frame))
    assert err.value.raw == bytes(frame)


@given(st.binary(max_size=12))
def test_arbitrary_bytes_never_raise_anything_else(data: bytes) -> None:
    with contextlib.suppress(FrameError):
        racp.parse_response(data)
