"""multipart/related parsing (RFC 2046) and the STOW-RS response (PS3.18 §10.5.3), pure."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.dicom.errors import MultipartError, PayloadTooLarge, UnsupportedMediaType
from cloud.dicom.multipart import (
    InstanceResult,
    build_multipart,
    parse_content_type,
    parse_multipart,
    stow_boundary,
    stow_response,
)
from firmware_sim.pacs import multipart_body

B = b"xyz-123"


def test_parses_what_the_simulator_builds() -> None:
    files = [b"first", b"", b"third\r\n--xyz-12 not a boundary\r\n\r\n"]
    parts = parse_multipart(multipart_body(files, "xyz-123"), B)
    assert [p.body for p in parts] == files
    assert all(p.content_type == "application/dicom" for p in parts)


def test_preamble_epilogue_headerless_part_and_padding() -> None:
    body = (
        b"preamble text\r\n--xyz-123  \r\n\r\nA\r\n"
        b"--xyz-123\r\nContent-Type: text/plain\r\nX-A: b\r\n\r\nB\r\n--xyz-123--\r\nepilogue"
    )
    parts = parse_multipart(body, B)
    assert [p.body for p in parts] == [b"A", b"B"]
    assert parts[0].content_type == "application/dicom"  # no header: the request type
    assert parts[1].content_type == "text/plain" and parts[1].headers["x-a"] == "b"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"no boundary here", "does not contain the boundary"),
        (b"--xyz-123\r\n\r\nA\r\n", "without the closing boundary"),
        (b"--xyz-123garbage\r\n\r\nA\r\n--xyz-123--", "not followed by CRLF"),
        (b"--xyz-123\r\nBad header\r\n\r\nA\r\n--xyz-123--", "malformed header"),
        (b"--xyz-123\r\nContent-Type: a\r\nA\r\n--xyz-123--", "no blank line"),
        (b"--xyz-123--", "no parts"),
    ],
)
def test_malformed_bodies_are_refused_with_a_reason(body: bytes, message: str) -> None:
    with pytest.raises(MultipartError, match=message) as info:
        parse_multipart(body, B)
    assert info.value.http_status == 400


def test_limits() -> None:
    body = build_multipart([b"a"] * 5, B)
    with pytest.raises(PayloadTooLarge) as info:
        parse_multipart(body, B, max_parts=4)
    assert info.value.http_status == 413
    with pytest.raises(PayloadTooLarge):
        parse_multipart(build_multipart([b"x" * 100], B), B, max_part_bytes=99)


@pytest.mark.parametrize(
    ("header", "boundary"),
    [
        ('multipart/related; type="application/dicom"; boundary=xyz-123', b"xyz-123"),
        ('Multipart/Related; boundary="a b:c"; type="Application/DICOM"', b"a b:c"),
        ("multipart/related; boundary=q", b"q"),  # type absent: application/dicom assumed
    ],
)
def test_content_type_accepted(header: str, boundary: bytes) -> None:
    assert stow_boundary(header) == boundary


@pytest.mark.parametrize(
    "header",
    [
        None,
        "application/dicom",
        "multipart/form-data; boundary=x",
        'multipart/related; type="application/dicom+json"; boundary=x',
        'multipart/related; type="application/dicom',
    ],
)
def test_content_type_refused_415(header: str | None) -> None:
    with pytest.raises(UnsupportedMediaType) as info:
        stow_boundary(header)
    assert info.value.http_status == 415


@pytest.mark.parametrize(
    "header", ["multipart/related; type=application/dicom", "multipart/related; boundary=" + "b" * 71]
)
def test_bad_boundary_is_400(header: str) -> None:
    with pytest.raises(MultipartError) as info:
        stow_boundary(header)
    assert info.value.http_status == 400


def test_parameters_with_escapes() -> None:
    assert parse_content_type('a/b; x="q\\"uote"; Y=z') == ("a/b", {"x": 'q"uote', "y": "z"})


@given(st.binary(max_size=400), st.binary(min_size=1, max_size=12))
def test_fuzz_only_typed_errors(body: bytes, boundary: bytes) -> None:
    try:
        parts = parse_multipart(body, boundary)
    except MultipartError:
        return
    assert parts and all(len(p.body) <= len(body) for p in parts)


@given(st.lists(st.binary(max_size=60), min_size=1, max_size=5), st.data())
def test_fuzz_round_trip_and_truncation(files: list[bytes], data: st.DataObject) -> None:
    boundary = b"bnd-" + bytes(data.draw(st.lists(st.sampled_from(b"abc0123"), min_size=4, max_size=20)))
    body = build_multipart(files, boundary)
    if any(b"\r\n--" + boundary in f + b"\r\n" for f in files):
        return  # a part containing the delimiter is not representable (RFC 2046 picks the boundary)
    assert [p.body for p in parse_multipart(body, boundary)] == files
    cut = data.draw(st.integers(0, len(body) - 1))
    mutated = body[:cut] + data.draw(st.binary(max_size=8)) + body[cut + 1 :]
    with contextlib.suppress(MultipartError):
        parse_multipart(mutated, boundary)


@given(st.text(max_size=200))
def test_fuzz_content_type_only_typed_errors(header: str) -> None:
    with contextlib.suppress(MultipartError):
        stow_boundary(header)


def test_response_statuses_and_dicom_json() -> None:
    ok = InstanceResult("1.2.840.10008.5.1.4.1.1.2", "1.2.3")
    bad = InstanceResult("1.2.840.10008.5.1.4.1.1.4", "1.2.4", 0x0122, "unsupported_sop_class: " + "x" * 100)
    assert stow_response([ok])[0] == 200
    assert stow_response([bad])[0] == 409
    status, body = stow_response([ok, bad])
    assert status == 202
    ref = body["00081199"]["Value"][0]
    assert ref["00081150"] == {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]}
    assert ref["00081155"] == {"vr": "UI", "Value": ["1.2.3"]}
    failed = body["00081198"]["Value"][0]
    assert failed["00081197"] == {"vr": "US", "Value": [0x0122]}
    assert len(failed["00000902"]["Value"][0]) == 64  # LO
    unknown = stow_response([InstanceResult("", "", 0xC000, "not_dicom")])[1]["00081198"]["Value"][0]
    assert unknown["00081155"] == {"vr": "UI"}


def test_split_finds_a_boundary_across_a_scan_window_edge() -> None:
    from cloud.dicom.multipart import SCAN_WINDOW, split_multipart

    for shift in range(-6, 3):  # the delimiter straddles the 1 MiB window edge in every position
        content = b"x" * (SCAN_WINDOW - 7 + shift)
        body = b"--b\r\n\r\n" + content + b"\r\n--b--\r\n"
        [span] = split_multipart(body, b"b")
        assert body[span.start : span.end] == content


def test_a_boundary_line_with_endless_padding_is_refused_without_reading_on() -> None:
    with pytest.raises(MultipartError, match="not followed by CRLF"):
        parse_multipart(b"--b" + b" " * 5000 + b"\r\n\r\nx\r\n--b--", b"b")
