"""Record Access Control Point (0x2A52): requests the hub writes and the responses it parses.

A request is ``opcode u8, operator u8, [operand]``; the device answers by indication on the
same characteristic with either "number of stored records" (opcode 5, operator 0, count)
or "response code" (opcode 6, operator 0, request opcode, code). The stored records
themselves arrive as ordinary measurement indications between request and response.

>>> report_all().hex()
'0101'
>>> parse_response(bytes([6, 0, 1, 1]))
ResponseCode(request=1, code=1)
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.ble.errors import BadRacpResponse

# op codes
REPORT_STORED_RECORDS = 1
DELETE_STORED_RECORDS = 2
ABORT_OPERATION = 3
REPORT_NUMBER_OF_RECORDS = 4
NUMBER_OF_RECORDS_RESPONSE = 5
RESPONSE_CODE = 6

# operators
NULL = 0
ALL_RECORDS = 1
LESS_OR_EQUAL = 2
GREATER_OR_EQUAL = 3
WITHIN_RANGE = 4
FIRST_RECORD = 5
LAST_RECORD = 6

# response codes
SUCCESS = 1
OP_CODE_NOT_SUPPORTED = 2
INVALID_OPERATOR = 3
OPERATOR_NOT_SUPPORTED = 4
INVALID_OPERAND = 5
NO_RECORDS_FOUND = 6
ABORT_UNSUCCESSFUL = 7
PROCEDURE_NOT_COMPLETED = 8
OPERAND_NOT_SUPPORTED = 9

RESPONSE_TEXT: dict[int, str] = {
    SUCCESS: "success",
    OP_CODE_NOT_SUPPORTED: "op code not supported",
    INVALID_OPERATOR: "invalid operator",
    OPERATOR_NOT_SUPPORTED: "operator not supported",
    INVALID_OPERAND: "invalid operand",
    NO_RECORDS_FOUND: "no records found",
    ABORT_UNSUCCESSFUL: "abort unsuccessful",
    PROCEDURE_NOT_COMPLETED: "procedure not completed",
    OPERAND_NOT_SUPPORTED: "operand not supported",
}


def report_all() -> bytes:
    """Ask the device to send every stored record."""
    return bytes([REPORT_STORED_RECORDS, ALL_RECORDS])


def report_number_all() -> bytes:
    """Ask how many records are stored."""
    return bytes([REPORT_NUMBER_OF_RECORDS, ALL_RECORDS])


def delete_all() -> bytes:
    """Ask the device to delete every stored record."""
    return bytes([DELETE_STORED_RECORDS, ALL_RECORDS])


def abort() -> bytes:
    """Abort the running procedure."""
    return bytes([ABORT_OPERATION, NULL])


@dataclass(frozen=True)
class NumberOfRecords:
    """Answer to "report number of stored records"."""

    count: int


@dataclass(frozen=True)
class ResponseCode:
    """The end of a procedure: ``code`` is :data:`SUCCESS` or the reason it failed."""

    request: int
    code: int

    @property
    def ok(self) -> bool:
        """Success, or "no records found" (nothing to fetch is not a failure)."""
        return self.code in (SUCCESS, NO_RECORDS_FOUND)

    @property
    def text(self) -> str:
        """The response code in words."""
        return RESPONSE_TEXT.get(self.code, f"unknown response code {self.code}")


RacpResponse = NumberOfRecords | ResponseCode


def parse_response(data: bytes) -> RacpResponse:
    """Parse one RACP indication; raises :class:`BadRacpResponse` for anything else.

    The count of "number of records" is a u16 in the specification; 1- and 4-byte counts
    seen from some devices (and accepted by Nordic's Android library) are accepted too.
    """
    raw = bytes(data)
    if len(raw) < 2:
        raise BadRacpResponse(f"RACP response of {len(raw)} byte(s) is too short", raw)
    opcode, operator = raw[0], raw[1]
    if operator != NULL:
        raise BadRacpResponse(f"RACP response with operator {operator} (must be 0)", raw)
    if opcode == NUMBER_OF_RECORDS_RESPONSE:
        if len(raw) - 2 not in (1, 2, 4):
            raise BadRacpResponse(f"RACP number of records has a {len(raw) - 2}-byte operand", raw)
        return NumberOfRecords(int.from_bytes(raw[2:], "little"))
    if opcode == RESPONSE_CODE:
        if len(raw) != 4:
            raise BadRacpResponse(f"RACP response code is {len(raw)} bytes (must be 4)", raw)
        return ResponseCode(request=raw[2], code=raw[3])
    raise BadRacpResponse(f"RACP op code {opcode} is not a response", raw)
