"""China second-generation resident ID-card reader (SAM serial protocol, 115200 8N1).

* :mod:`drivers.idcard.frame` — frame building, checksum, stream decoder with resync
* :mod:`drivers.idcard.status` — SW3 codes as typed errors
* :mod:`drivers.idcard.card` — text block -> :class:`~protocol.model.Subject`
* :mod:`drivers.idcard.ethnic` — GB 3304 ethnic names (zh, en)
* :mod:`drivers.idcard.reader` — the async driver (``driver = "idcard"``)
"""

from __future__ import annotations

from drivers.base import Event
from drivers.errors import FrameError
from drivers.idcard import frame, status
from drivers.idcard.card import decode_read_data
from drivers.idcard.reader import make_reader
from drivers.registry import CodecInfo, DriverFactory


def decode_response(data: bytes) -> list[Event]:
    """Decode one reader answer: a read answer gives a CardRead, find/select answers nothing.

    An error answer (SW3 other than 90/9F) raises FrameError whose ``__cause__`` is the
    typed :class:`~drivers.idcard.status.SamStatusError`.
    """
    response = frame.parse(data)
    if response.sw3 not in (status.SUCCESS, status.CARD_FOUND):
        error = status.error_for(response.sw3)
        raise FrameError(f"reader answered with an error: {error}", data[: frame.REDACT_AFTER]) from error
    if response.sw3 == status.SUCCESS and len(response.data) >= 4 + 256:
        return [decode_read_data(response.data)]
    return []


DRIVERS: dict[str, DriverFactory] = {"idcard": make_reader}

def _example_read_answer() -> bytes:
    """A read answer for the GB 11643 worked-example number (synthetic person, blank photo)."""
    fields = [("张丽", 30), ("2", 2), ("01", 4), ("19491231", 16), ("北京市朝阳区建国路1号", 70),
              ("11010519491231002X", 36), ("北京市公安局朝阳分局", 30), ("20100101", 16), ("长期", 16), ("", 36)]
    text = b"".join(value.ljust(size // 2).encode("utf-16-le") for value, size in fields)
    payload = bytes([0, 0, status.SUCCESS]) + b"\x01\x00\x04\x00" + text + bytes(1024)
    length = (len(payload) + 1).to_bytes(2, "big")
    return frame.PREAMBLE + length + payload + bytes([frame.xor(length + payload)])


#: sample frames per codec: find-card and select-card answers from qiwenming/IDCardDemo, a read answer
EXAMPLES: dict[str, list[bytes]] = {
    "idcard": [
        bytes.fromhex("AAAAAA9669 0008 00009F 00000000 97"),
        bytes.fromhex("AAAAAA9669 000C 000090 0000000000000000 9C"),
        _example_read_answer(),
    ],
}

CODECS = [
    CodecInfo("idcard", "resident ID-card reader answer (SAM frame AA AA AA 96 69 ...)", decode_response,
              examples=tuple(EXAMPLES["idcard"])),
]
