"""Serial height/weight stations and the serial BP monitor.

* :mod:`drivers.stations.a5` — ``A5 5A`` binary module (push and poll)
* :mod:`drivers.stations.tanita` — Tanita-style key/value CSV line
* :mod:`drivers.stations.detecto` — Detecto-style ``Time,Date,BMI,Height,Weight`` line
* :mod:`drivers.stations.accutorr` — Accutorr-style BP ``P:`` line
* :mod:`drivers.stations.dialects` — the dialect table configuration names
* :mod:`drivers.stations.driver` — the async driver (``serial-station``, ``serial-bp``)
"""

from __future__ import annotations

from drivers.base import Event, Measurement
from drivers.registry import CodecInfo, DriverFactory
from drivers.stations import a5, accutorr, detecto, tanita
from drivers.stations.common import Item
from drivers.stations.driver import make_bp, make_station


def _events(item: Item | None) -> list[Event]:
    return [item] if isinstance(item, Measurement) else []


def decode_a5(data: bytes) -> list[Event]:
    """One ``A5 5A`` frame (default function codes)."""
    return _events(a5.decode_frame(data))


def decode_tanita(data: bytes) -> list[Event]:
    """One Tanita-style line (CR LF optional)."""
    return _events(tanita.TanitaParser()(data.strip(b"\r\n")))


def decode_detecto(data: bytes) -> list[Event]:
    """One Detecto-style line (CR optional)."""
    return _events(detecto.DetectoParser()(data.strip(b"\r\n")))


def decode_accutorr(data: bytes) -> list[Event]:
    """One Accutorr ``P:`` line (CR LF optional)."""
    parsed = accutorr.parse_line(data.strip(b"\r\n"))
    return [parsed[0]] if isinstance(parsed, tuple) else []


DRIVERS: dict[str, DriverFactory] = {"serial-station": make_station, "serial-bp": make_bp}

#: sample frames per codec (for benchmarks and `mchub decode` examples)
EXAMPLES: dict[str, list[bytes]] = {
    "a5-station": [bytes.fromhex("A55A0703370659028F31"), bytes.fromhex("A55A05033506599C")],
    "tanita-csv": [
        b'{0,16,~0,1,~1,1,~2,1,MO,"DC-217A",DT,"05/03/2024",Ti,"09:41",GE,2,AG,34,Hm,158.0,Wk,55.4,'
        b"MI,22.2,FW,27.5\r\n",
    ],
    "detecto": [b"12:00,08/07/15,21.5,5'03.0\",132.3lb\r"],
    "accutorr-bp": [b"P:--,85,120, 45, 80,000,010,000, 5\r\n"],
}

CODECS = [
    CodecInfo(name, description, decode, examples=tuple(EXAMPLES[name]))
    for name, description, decode in (
        ("a5-station", "A5 5A binary height/weight module frame", decode_a5),
        ("tanita-csv", "Tanita-style key/value CSV line", decode_tanita),
        ("detecto", "Detecto-style Time,Date,BMI,Height,Weight line (ft'in\", lb)", decode_detecto),
        ("accutorr-bp", "Accutorr-style blood-pressure P: line", decode_accutorr),
    )
]
