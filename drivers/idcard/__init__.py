"""China second-generation resident ID-card reader (SAM serial protocol, 115200 8N1).

* :mod:`drivers.idcard.frame` — frame building, checksum, stream decoder with resync
* :mod:`drivers.idcard.status` — SW3 codes as typed errors
* :mod:`drivers.idcard.card` — text block -> :class:`~protocol.model.Subject`
* :mod:`drivers.idcard.ethnic` — GB 3304 ethnic names (zh, en)
* :mod:`drivers.idcard.reader` — the async driver (``kind = "idcard"``)
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


CODECS = [
    CodecInfo("idcard", "resident ID-card reader answer (SAM frame AA AA AA 96 69 ...)", decode_response),
]

DRIVERS: dict[str, DriverFactory] = {"idcard": make_reader}

#: sample frames per codec (find-card and select-card answers from qiwenming/IDCardDemo)
EXAMPLES: dict[str, list[bytes]] = {
    "idcard": [
        bytes.fromhex("AAAAAA9669 0008 00009F 00000000 97"),
        bytes.fromhex("AAAAAA9669 000C 000090 0000000000000000 9C"),
    ],
}
