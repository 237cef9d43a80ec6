"""The serial station dialects a configuration can name (``dialect = "..."``).

| dialect | device | default baud | modes | poll request (default) |
|---|---|---|---|---|
| ``a5`` | A5 5A binary height/weight module | 9600 | push, poll | ``A5 5A 03 03 37 3D`` (height + weight) |
| ``tanita-csv`` | Tanita-style key/value CSV line | 9600 | push, poll | ``05`` (ENQ) |
| ``detecto`` | Detecto-style Time,Date,BMI,Height,Weight | 9600 | push, poll | ``05`` (ENQ) |
| ``accutorr`` | Accutorr-style BP monitor ``P:`` line | 9600 | poll | ``P`` |

The poll request of the line dialects is not documented publicly: ``poll_request``
(text, ``\\r``/``\\n``/``\\x05`` escapes allowed) overrides it.

Each dialect's keys are declared once, as a msgspec Struct next to its codec
(:class:`~drivers.stations.a5.A5Dialect`, :class:`~drivers.stations.tanita.TanitaOptions`,
:class:`~drivers.stations.detecto.DetectoOptions`; :class:`LineRequest` here) and decoded from
the device table by :func:`drivers.options.device_options`, so a problem names the device,
the key and the fix: ``device 'st-1'.fn_both: 'zz' is not an integer in 0..255; fix: ...``.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

import msgspec
from msgspec import Meta

from drivers.options import device_options, option_error
from drivers.stations import a5, accutorr, detecto, tanita
from drivers.stations.common import Item

#: an A5 byte written as text ("0x37"): what ``mchub provision device add --option fn_both=0x37`` sends
_HEX = re.compile(r"0[xX][0-9a-fA-F]{1,2}")
_REQUEST_FIX = 'write poll_request = "W\\r" (text; \\r, \\n and \\xNN escapes)'


class StationDecoder(Protocol):
    """What the station driver needs from a dialect's stream decoder."""

    def feed_items(self, data: bytes) -> list[Item]:
        """Decode ``data``: measurements, frame errors, signals."""
        ...

    def flush(self) -> list[Item]:
        """The line went idle: report a partial frame."""
        ...

    def reset(self) -> None:
        """Forget buffered bytes (keep de-duplication state)."""
        ...


#: a dialect's keys decoded from a device table: its stream decoder and its poll request
Setup = Callable[[str, Mapping[str, Any]], tuple[StationDecoder, bytes]]


@dataclass(frozen=True)
class Dialect:
    """How to talk to one family of stations."""

    name: str
    description: str
    setup: Setup  #: ``setup(device_id, table)``; ConfigError naming the key and the fix
    modes: tuple[str, ...] = ("push", "poll")
    default_mode: str = "push"
    baudrate: int = 9600
    self_deduplicating: bool = False  #: the decoder itself drops repeats of a polled measurement


class LineRequest(msgspec.Struct, frozen=True, kw_only=True):
    """``poll_request`` of the line dialects: what the hub sends to ask; None: the dialect's default."""

    poll_request: Annotated[str, Meta(min_length=1, description=_REQUEST_FIX)] | None = None


def _a5(device_id: str, config: Mapping[str, Any]) -> tuple[StationDecoder, bytes]:
    """A byte key may be an integer (TOML ``0x37``) or the text ``"0x37"``."""
    table = {
        k: int(v, 16) if k in a5.A5Dialect.__struct_fields__ and isinstance(v, str) and _HEX.fullmatch(v) else v
        for k, v in config.items()
    }
    d = device_options(device_id, table, a5.A5Dialect)
    return a5.A5Decoder(d), a5.request(d, d.fn_both)


def _request(device_id: str, config: Mapping[str, Any], default: bytes) -> bytes:
    raw = device_options(device_id, config, LineRequest).poll_request
    if raw is None:
        return default
    try:
        return codecs.decode(raw, "unicode_escape").encode("latin-1")
    except UnicodeError as exc:
        raise option_error(device_id, "poll_request", f"{raw!r} is not a request ({exc})", _REQUEST_FIX) from None


def _tanita(device_id: str, config: Mapping[str, Any]) -> tuple[StationDecoder, bytes]:
    return tanita.decoder(device_options(device_id, config, tanita.TanitaOptions)), _request(device_id, config, b"\x05")


def _detecto(device_id: str, config: Mapping[str, Any]) -> tuple[StationDecoder, bytes]:
    return detecto.decoder(device_options(device_id, config, detecto.DetectoOptions)), _request(
        device_id, config, b"\x05"
    )


def _accutorr(device_id: str, config: Mapping[str, Any]) -> tuple[StationDecoder, bytes]:
    return accutorr.decoder(), _request(device_id, config, accutorr.POLL)


DIALECTS: dict[str, Dialect] = {
    d.name: d
    for d in (
        Dialect("a5", "A5 5A binary height/weight module", _a5),
        Dialect("tanita-csv", "Tanita-style comma-separated key/value line", _tanita),
        Dialect("detecto", "Detecto-style Time,Date,BMI,Height,Weight line", _detecto),
        Dialect(
            "accutorr",
            "Accutorr-style blood-pressure monitor (P: line)",
            _accutorr,
            modes=("poll",),
            default_mode="poll",
            self_deduplicating=True,
        ),
    )
}


def dialect(name: str | None, device_id: str) -> Dialect:
    """Look a dialect up by name; ConfigError listing the choices."""
    if name is None:
        raise option_error(device_id, "dialect", "missing", f'add dialect = "a5" (one of {", ".join(DIALECTS)})')
    if name not in DIALECTS:
        raise option_error(device_id, "dialect", f"{name!r} is not a dialect", f"use one of {', '.join(DIALECTS)}")
    return DIALECTS[name]
