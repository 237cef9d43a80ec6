"""JSON measurement messages: strict schema, canonical units, typed rejections."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import FrameError, OverlongFrame, TruncatedFrame
from drivers.mqtt.codec import (
    MAX_MESSAGE_BYTES,
    MalformedMessage,
    SchemaError,
    UnknownCode,
    UnknownUnit,
    decode_measurements,
    decode_message,
)

GOOD: dict[str, Any] = {
    "device_id": "bp-3", "seq": 17, "time": "2024-05-01T09:30:00", "kind": "blood_pressure",
    "measurements": [{"code": "8480-6", "value": 120, "unit": "mm[Hg]"},
                     {"code": "8462-4", "value": 10.6, "unit": "kPa"},
                     {"code": "8867-4", "value": 72, "unit": "bpm"}],
    "status": ["irregular_pulse"],
}


def payload(**changes: Any) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()


def test_the_documented_message_decodes() -> None:
    msg = decode_message(payload())
    assert (msg.device_id, msg.seq, msg.key) == ("bp-3", 17, ("bp-3", 17, "2024-05-01T09:30:00"))
    m = msg.measurement
    assert m.kind == "blood_pressure" and m.device_time == "2024-05-01T09:30:00"
    assert m.status == ("irregular_pulse",) and m.raw == payload()
    assert [(o.code, o.value, o.unit, o.original_value, o.original_unit) for o in m.observations] == [
        ("8480-6", 120.0, "mm[Hg]", None, None),
        ("8462-4", 79.5, "mm[Hg]", 10.6, "kPa"),
        ("8867-4", 72.0, "/min", None, None),  # "bpm" is only another spelling of /min
    ]
    assert decode_measurements(payload()) == [m]


def test_kind_and_status_are_optional_and_implausible_values_still_arrive() -> None:
    body = {k: v for k, v in GOOD.items() if k not in ("kind", "status")}
    body["measurements"] = [{"code": "8310-5", "value": 99.0, "unit": "Cel"}]
    m = decode_message(json.dumps(body).encode()).measurement
    assert m.kind == "generic" and m.status == () and m.observations[0].value == 99.0


@pytest.mark.parametrize(("data", "error", "reason"), [
    (b"", TruncatedFrame, "truncated"),
    (b"   ", TruncatedFrame, "truncated"),
    (payload()[:40], TruncatedFrame, "truncated"),
    (b"\xff\xfe<m/>", MalformedMessage, "malformed"),
    (b"{'device_id': 'bp-3'}", MalformedMessage, "malformed"),
    (payload(patient="x"), SchemaError, "schema"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "seq"}).encode(), SchemaError, "schema"),
    (payload(seq=-1), SchemaError, "schema"),
    (payload(seq="17"), SchemaError, "schema"),
    (payload(device_id="bp 3"), SchemaError, "schema"),
    (payload(time="yesterday"), SchemaError, "schema"),
    (payload(time="2024-02-30T09:30:00"), SchemaError, "schema"),
    (payload(kind="mood"), SchemaError, "schema"),
    (payload(measurements=[]), SchemaError, "schema"),
    (payload(measurements=[{"code": "8480-6", "value": True, "unit": "mmHg"}]), SchemaError, "schema"),
    (payload(measurements=[{"code": "8480-6", "value": 120}]), SchemaError, "schema"),
    (payload(measurements=[{"code": "1234-5", "value": 1, "unit": "cm"}]), UnknownCode, "unknown_code"),
    (payload(measurements=[{"code": "8480-6", "value": 1, "unit": "furlong"}]), UnknownUnit, "unknown_unit"),
    (payload(measurements=[{"code": "8480-6", "value": 1, "unit": "kg"}]), UnknownUnit, "unknown_unit"),
    (payload()[:-1] + b', "x": 1e400}', SchemaError, "schema"),
    (payload(status=["x" * 60] * 80), OverlongFrame, "overlong"),
])
def test_bad_messages_are_rejected_with_a_typed_error(data: bytes, error: type[FrameError], reason: str) -> None:
    with pytest.raises(error) as err:
        decode_message(data)
    assert err.value.reason == reason
    assert err.value.raw == data[:MAX_MESSAGE_BYTES]


def test_an_infinite_value_is_not_a_number() -> None:
    data = payload().replace(b'"value": 120', b'"value": 1e400')
    with pytest.raises(SchemaError, match="out of range"):
        decode_message(data)


@given(st.binary(max_size=5000))
def test_fuzz_arbitrary_bytes_decode_or_raise_a_frame_error(data: bytes) -> None:
    try:
        decode_message(data)
    except FrameError as exc:
        assert exc.reason in {"truncated", "overlong", "malformed", "schema", "unknown_code", "unknown_unit",
                              "invalid_value"}


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                  max_size=4), max_leaves=12)


@given(st.dictionaries(st.sampled_from([*GOOD, "other"]), _json, max_size=7))
def test_fuzz_json_shaped_like_a_message_decodes_or_raises_a_frame_error(body: dict[str, Any]) -> None:
    try:
        msg = decode_message(json.dumps({**GOOD, **body}).encode())
    except FrameError as exc:
        assert exc.raw  # kept for inspection
    else:
        assert msg.measurement.observations
