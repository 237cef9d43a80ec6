"""Reading one stored HL7 message for processing: CPU only, no database.

:func:`read_message` parses and interprets a message (:func:`cloud.mllp.processing.process_message`),
builds its ``results`` rows (all but the subject, which only the processing transaction
knows) and the keyed HMACs of whom it names. :class:`~cloud.integration.inbound.Hl7Processor`
does it outside its transactions, in worker processes when it has them
(:mod:`cloud.integration.read_workers`): what a worker read crosses the process boundary as
MessagePack (:func:`encode_reads`, :func:`decode_reads`), a few µs per message where pickling
the same objects took about 170.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any, NamedTuple

import msgspec

from cloud.mllp.processing import Processed, process_message
from cloud.mllp.store import StoredMessage
from cloud.records.crypto_at_rest import AtRest
from protocol.hl7.codemap import CodeMap
from protocol.hl7.errors import Hl7Error
from protocol.hl7.message import RESULT_TYPES
from protocol.ids import now_ms

#: a result row as written; :attr:`Item.rows` hold them from ``source`` on (the subject comes in the transaction)
RESULT_COLUMNS = ("subject_id", "source", "source_key", "kind", "code", "value", "unit", "observed_ms", "payload",
                  "created_ms", "origin")
_Row = tuple[str, str, str, str, str, str, int | None, str, int, str]


class Item(NamedTuple):
    """One message as read outside the transaction: everything but what the database decides (the subject)."""

    message: StoredMessage
    processed: Processed | Hl7Error
    rows: tuple[tuple[Any, ...], ...] = ()  #: result rows without their subject id (``RESULT_COLUMNS[1:]``)
    patient_index: str | None = None  #: keyed HMACs of whom it names (the message browser's search)
    name_index: str | None = None


class ReadError(Hl7Error):
    """A message that no longer parses, as a worker process reported it (its reason and text)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@functools.lru_cache(maxsize=4096)  # a message's results mostly share one time
def _ms(iso: str | None) -> int | None:
    if not iso:
        return None
    try:
        return int(dt.datetime.fromisoformat(iso).timestamp() * 1000)
    except ValueError:
        return None


def read_message(m: StoredMessage, codes: CodeMap, at_rest: AtRest) -> Item:
    """Parse and interpret one message and build its result rows."""
    try:
        p = process_message(m.raw, codes)
    except Hl7Error as exc:
        return Item(m, exc)
    rows: tuple[tuple[Any, ...], ...] = ()
    if p.message_type.split("^", 1)[0] in RESULT_TYPES:
        now, origin = now_ms(), f"hl7:{m.id}"
        rows = tuple(
            ("hl7", f"{origin}:{n}", r.category, (r.loinc or f"{r.system or 'L'}:{r.code}")[:64], r.value, r.units,
             _ms(r.observed_at), msgspec.json.encode({"result": r, "control_id": p.control_id,
                                                      "message_type": p.message_type}).decode(), now, origin)
            for n, r in enumerate(p.results, 1))
    who = p.patient
    return Item(m, p, rows, at_rest.blind_index(who.national_id) if who.national_id else None,
                at_rest.name_index(who.name) if who.name else None)


class _Read(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """An :class:`Item` on the wire: the message's results travel as their rows only."""

    processed: Processed | None
    error: tuple[str, str] | None  #: (reason, text) of a message that no longer parses
    rows: tuple[_Row, ...]
    patient_index: str | None
    name_index: str | None


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(list[_Read])


def encode_reads(items: list[Item]) -> bytes:
    """What a worker sends back for ``items`` (in order)."""
    out = []
    for i in items:
        p = i.processed
        if isinstance(p, Hl7Error):
            out.append(_Read(None, (p.reason, str(p)), (), None, None))
        else:  # the rows carry the results (their JSON payload included): not sent twice
            out.append(_Read(msgspec.structs.replace(p, results=()), None, i.rows, i.patient_index, i.name_index))
    return _ENCODER.encode(out)


def decode_reads(data: bytes, messages: list[StoredMessage]) -> list[Item]:
    """The items of ``messages`` from what a worker sent back (:attr:`Processed.results` left empty:
    :attr:`Item.rows` hold them)."""
    out = []
    for m, r in zip(messages, _DECODER.decode(data), strict=True):
        if r.processed is None:
            reason, text = r.error or ("hl7", "")
            out.append(Item(m, ReadError(reason, text)))
        else:
            out.append(Item(m, r.processed, r.rows, r.patient_index, r.name_index))
    return out
