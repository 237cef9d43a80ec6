"""The serial station dialects a configuration can name (``dialect = "..."``).

| dialect | device | default baud | modes | poll request (default) |
|---|---|---|---|---|
| ``a5`` | A5 5A binary height/weight module | 9600 | push, poll | ``A5 5A 03 03 37 3D`` (height + weight) |
| ``tanita-csv`` | Tanita-style key/value CSV line | 9600 | push, poll | ``05`` (ENQ) |
| ``detecto`` | Detecto-style Time,Date,BMI,Height,Weight | 9600 | push, poll | ``05`` (ENQ) |
| ``accutorr`` | Accutorr-style BP monitor ``P:`` line | 9600 | poll | ``P`` |

The poll request of the line dialects is not documented publicly: ``poll_request``
(text, ``\\r``/``\\n``/``\\x05`` escapes allowed) overrides it.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from drivers.errors import ConfigError
from drivers.stations import a5, accutorr, detecto, tanita
from drivers.stations.common import Item


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


@dataclass(frozen=True)
class Dialect:
    """How to talk to one family of stations."""

    name: str
    description: str
    decoder: Callable[[Mapping[str, Any]], StationDecoder]
    poll_request: Callable[[Mapping[str, Any]], bytes]
    modes: tuple[str, ...] = ("push", "poll")
    default_mode: str = "push"
    baudrate: int = 9600
    self_deduplicating: bool = False  #: the decoder itself drops repeats of a polled measurement


def a5_dialect(config: Mapping[str, Any]) -> a5.A5Dialect:
    """Function codes and device id from configuration (integers or hex strings like "0x37")."""
    values: dict[str, int] = {}
    for key in ("device_id", "fn_height", "fn_weight", "fn_both", "fn_link"):
        if key in config:
            raw = config[key]
            try:
                values[key] = int(raw, 0) if isinstance(raw, str) else int(raw)
            except (TypeError, ValueError):
                raise ConfigError(f"a5: {key} must be a byte value such as 0x37 (got {raw!r})") from None
            if not 0 <= values[key] <= 255:
                raise ConfigError(f"a5: {key} must be between 0 and 255")
    return a5.A5Dialect(**values)


def _text_request(default: bytes) -> Callable[[Mapping[str, Any]], bytes]:
    def request(config: Mapping[str, Any]) -> bytes:
        raw = config.get("poll_request")
        if raw is None:
            return default
        return codecs.decode(str(raw), "unicode_escape").encode("latin-1")

    return request


DIALECTS: dict[str, Dialect] = {
    d.name: d
    for d in (
        Dialect("a5", "A5 5A binary height/weight module",
                lambda c: a5.A5Decoder(a5_dialect(c)),
                lambda c: a5.request(a5_dialect(c), a5_dialect(c).fn_both)),
        Dialect("tanita-csv", "Tanita-style comma-separated key/value line", tanita.decoder,
                _text_request(b"\x05")),
        Dialect("detecto", "Detecto-style Time,Date,BMI,Height,Weight line", detecto.decoder,
                _text_request(b"\x05")),
        Dialect("accutorr", "Accutorr-style blood-pressure monitor (P: line)", accutorr.decoder,
                _text_request(accutorr.POLL), modes=("poll",), default_mode="poll", self_deduplicating=True),
    )
}


def dialect(name: object, device_id: str) -> Dialect:
    """Look a dialect up by name; ConfigError listing the choices."""
    if not isinstance(name, str) or name not in DIALECTS:
        raise ConfigError(f"device {device_id!r}: dialect must be one of {', '.join(DIALECTS)} (got {name!r})")
    return DIALECTS[name]
