"""STOW-RS wire format, pure: the multipart/related request and the DICOM JSON response.

Request (PS3.18 §10.5, RFC 2387/2046)::

    Content-Type: multipart/related; type="application/dicom"; boundary=XYZ

    --XYZ\\r\\n
    Content-Type: application/dicom\\r\\n
    \\r\\n
    <DICOM Part 10 file>\\r\\n
    --XYZ--

:func:`parse_content_type` refuses anything but ``multipart/related`` with
``type="application/dicom"`` (415); :func:`parse_multipart` splits the body with every
offset bounds-checked and the number and size of parts limited (400/413). Both raise
only :class:`~cloud.dicom.errors.MultipartError` subclasses.

Response (PS3.18 §10.5.3): HTTP 200 when every instance was stored, 202 when some
were and some failed, 409 when none was stored; the body is DICOM JSON with
*Referenced SOP Sequence* (0008,1199) and *Failed SOP Sequence* (0008,1198), each
failure carrying its *Failure Reason* (0008,1197) and a short human-readable reason in
*Error Comment* (0000,0902, LO: at most 64 characters; the full text goes to the log).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cloud.dicom.errors import MultipartError, PayloadTooLarge, UnsupportedMediaType

DICOM_TYPE = "application/dicom"
RESPONSE_TYPE = "application/dicom+json"
MAX_PARTS = 1000
MAX_PART_HEADER_BYTES = 8 * 1024
MAX_BODY_BYTES = 512 * 1024 * 1024

_TCHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_VALUE_CHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z/]+"  # a token, plus '/' that many clients leave unquoted
_PARAM_RE = re.compile(rf'\s*;\s*({_TCHARS})\s*=\s*({_VALUE_CHARS}|"(?:[^"\\]|\\.)*")', re.ASCII)
_BCHARS_RE = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]", re.ASCII)


class Buffer(Protocol):
    """What :func:`split_multipart` needs of a body: ``bytes`` and ``mmap.mmap`` both qualify."""

    def find(self, sub: bytes, start: int = ..., end: int = ..., /) -> int: ...

    def __getitem__(self, index: slice, /) -> bytes: ...

    def __len__(self) -> int: ...


#: search windows: a long scan is cut into pieces so a worker thread running it lets the
#: event loop's thread take the GIL between them (one ``find`` over 100 MiB holds it ~0.1 s)
SCAN_WINDOW = 1 << 20


def _find(body: Buffer, sub: bytes, start: int, end: int | None = None) -> int:
    """``body.find(sub, start, end)`` in windows of :data:`SCAN_WINDOW` bytes."""
    end = len(body) if end is None else min(end, len(body))
    pos = start
    while pos < end:
        hit = body.find(sub, pos, min(end, pos + SCAN_WINDOW + len(sub) - 1))
        if hit >= 0:
            return hit
        pos += SCAN_WINDOW
    return -1


@dataclass(frozen=True, slots=True)
class Part:
    """One body part: its headers (lower-cased names) and its content."""

    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        """The part's media type without parameters, lower-cased; ``application/dicom`` if absent."""
        return self.headers.get("content-type", DICOM_TYPE).split(";")[0].strip().lower()


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """Split a Content-Type header into its lower-cased media type and parameters."""
    media, sep, rest = value.partition(";")
    params: dict[str, str] = {}
    rest = (sep + rest).rstrip().rstrip(";")  # a trailing ';' is common and harmless
    pos = 0
    while pos < len(rest):
        m = _PARAM_RE.match(rest, pos)
        if m is None:
            raise MultipartError(f"Content-Type parameters cannot be parsed near {rest[pos : pos + 20]!r}")
        raw = m.group(2)
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", raw[1:-1]) if raw.startswith('"') else raw
        pos = m.end()
    return media.strip().lower(), params


def stow_boundary(content_type: str | None) -> bytes:
    """The boundary of a STOW-RS request, or :class:`UnsupportedMediaType` / :class:`MultipartError`."""
    if not content_type:
        raise UnsupportedMediaType('no Content-Type; send multipart/related; type="application/dicom"')
    try:
        media, params = parse_content_type(content_type)
    except MultipartError as exc:
        raise UnsupportedMediaType(f"Content-Type cannot be parsed: {exc}") from exc
    if media != "multipart/related":
        raise UnsupportedMediaType(f'Content-Type is {media}; send multipart/related; type="application/dicom"')
    kind = params.get("type", DICOM_TYPE).lower()
    if kind != DICOM_TYPE:
        raise UnsupportedMediaType(f"multipart/related type={kind} is not supported; only {DICOM_TYPE}")
    boundary = params.get("boundary", "")
    if not _BCHARS_RE.fullmatch(boundary):
        raise MultipartError("multipart boundary is missing or not 1-70 valid characters (RFC 2046 §5.1.1)")
    return boundary.encode("ascii")


def _headers(raw: bytes, index: int) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in raw.split(b"\r\n"):
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep or not name.strip() or not name.isascii() or not value.isascii():
            raise MultipartError(f"part {index + 1} has a malformed header line")
        headers[name.strip().lower().decode("ascii")] = value.strip().decode("ascii")
    return headers


@dataclass(frozen=True, slots=True)
class PartSpan:
    """Where one body part's content lies in the body: ``body[start:end]``."""

    headers: dict[str, str]
    start: int
    end: int

    @property
    def content_type(self) -> str:
        """The part's media type without parameters, lower-cased; ``application/dicom`` if absent."""
        return self.headers.get("content-type", DICOM_TYPE).split(";")[0].strip().lower()


def split_multipart(
    body: Buffer, boundary: bytes, max_parts: int = MAX_PARTS, max_part_bytes: int = MAX_BODY_BYTES
) -> list[PartSpan]:
    """Find the parts of a multipart body without copying them (``body`` may be an ``mmap``).

    Raises :class:`MultipartError` or :class:`PayloadTooLarge`.
    """
    if not boundary or len(boundary) > 70:
        raise MultipartError("multipart boundary must be 1-70 characters")
    dash = b"--" + boundary
    delim = b"\r\n" + dash
    if body[: len(dash)] == dash:
        pos = len(dash)
    else:
        first = _find(body, delim, 0)
        if first < 0:
            raise MultipartError("the body does not contain the boundary given in Content-Type")
        pos = first + len(delim)
    parts: list[PartSpan] = []
    while True:
        if body[pos : pos + 2] == b"--":
            break  # close delimiter; anything after it is the epilogue
        eol = body.find(b"\r\n", pos, pos + 1024)  # only transport padding may follow a boundary
        if eol < 0 or body[pos:eol].strip(b" \t"):
            raise MultipartError(f"boundary line {len(parts) + 1} is not followed by CRLF")
        start = eol + 2
        end = _find(body, delim, start)
        if end < 0:
            raise MultipartError("the body ends without the closing boundary")
        if len(parts) >= max_parts:
            raise PayloadTooLarge(f"more than {max_parts} parts in one request")
        if end - start > max_part_bytes:
            raise PayloadTooLarge(f"part {len(parts) + 1} is larger than {max_part_bytes} bytes")
        if body[start : start + 2] == b"\r\n":
            head, content_start = b"", start + 2
        else:
            head_end = body.find(b"\r\n\r\n", start, min(end, start + MAX_PART_HEADER_BYTES))
            if head_end < 0:
                raise MultipartError(f"part {len(parts) + 1} has no blank line after its headers (or they exceed 8 KB)")
            head, content_start = body[start:head_end], head_end + 4
        parts.append(PartSpan(_headers(head, len(parts)), content_start, end))
        pos = end + len(delim)
    if not parts:
        raise MultipartError("the request contains no parts")
    return parts


def parse_multipart(
    body: bytes, boundary: bytes, max_parts: int = MAX_PARTS, max_part_bytes: int = MAX_BODY_BYTES
) -> list[Part]:
    """Split a multipart body into parts; raise :class:`MultipartError` or :class:`PayloadTooLarge`."""
    return [Part(s.headers, body[s.start : s.end]) for s in split_multipart(body, boundary, max_parts, max_part_bytes)]


def build_multipart(files: Sequence[bytes], boundary: bytes) -> bytes:
    """The inverse of :func:`parse_multipart` for ``application/dicom`` parts (tests, tools)."""
    chunks = [b"--" + boundary + b"\r\nContent-Type: application/dicom\r\n\r\n" + f + b"\r\n" for f in files]
    return b"".join(chunks) + b"--" + boundary + b"--\r\n"


@dataclass(frozen=True, slots=True)
class InstanceResult:
    """One instance's line in the STOW-RS response."""

    sop_class_uid: str
    sop_instance_uid: str
    failure_reason: int | None = None
    comment: str = ""
    retrieve_url: str | None = None


def _ref(r: InstanceResult) -> dict[str, Any]:
    item: dict[str, Any] = {
        "00081150": {"vr": "UI", "Value": [r.sop_class_uid]} if r.sop_class_uid else {"vr": "UI"},
        "00081155": {"vr": "UI", "Value": [r.sop_instance_uid]} if r.sop_instance_uid else {"vr": "UI"},
    }
    if r.failure_reason is not None:
        item["00081197"] = {"vr": "US", "Value": [r.failure_reason]}
        item["00000902"] = {"vr": "LO", "Value": [r.comment[:64]]}
    elif r.retrieve_url:
        item["00081190"] = {"vr": "UR", "Value": [r.retrieve_url]}
    return item


def stow_response(results: Sequence[InstanceResult], retrieve_url: str | None = None) -> tuple[int, dict[str, Any]]:
    """HTTP status and DICOM JSON body for a STOW-RS answer (PS3.18 §10.5.3)."""
    ok = [r for r in results if r.failure_reason is None]
    failed = [r for r in results if r.failure_reason is not None]
    body: dict[str, Any] = {}
    if retrieve_url:
        body["00081190"] = {"vr": "UR", "Value": [retrieve_url]}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": [_ref(r) for r in failed]}
    if ok:
        body["00081199"] = {"vr": "SQ", "Value": [_ref(r) for r in ok]}
    status = 200 if not failed else (202 if ok else 409)
    return status, body
