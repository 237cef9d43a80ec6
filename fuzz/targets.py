"""Fuzz targets: each takes arbitrary bytes and may raise only its documented error types.

Anything else escaping a target is a bug: ``fuzz/run.py`` (atheris, coverage-guided)
reports it as a crash, and ``tests/test_fuzz_regressions.py`` replays every saved input
in CI. Device codecs are added automatically from ``drivers.registry``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import cache
from pathlib import Path

import msgspec
from cryptography.hazmat.primitives.asymmetric import ed25519

from protocol import ack, batch, commands, envelope, idnum
from protocol.errors import ProtocolError
from protocol.keys import RecipientPrivate, SuiteId
from protocol.mch.records import case_from_json
from protocol.mch.validate import missing, validate

# fixed keys so that inputs are reproducible
_HUB = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
_CLOUD = RecipientPrivate(SuiteId.X25519_AES256GCM, bytes(range(32, 64)))
_RECIPIENTS = {_CLOUD.public().key_id: _CLOUD}
_CLOUD_SIGNER = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(64, 96)))


def _envelope(data: bytes) -> None:
    envelope.open_batch(data, signer=_HUB.public_key(), recipients=_RECIPIENTS)


def _body(data: bytes) -> None:
    batch.decode_records(data, hub_id="hub-1", epoch=1, first_seq=1, max_size=1 << 20)


def _idnum(data: bytes) -> None:
    idnum.normalise(data.decode("utf-8", "replace"))


def _command(data: bytes) -> None:
    commands.verify_command(data, _CLOUD_SIGNER.public_key(), "hub-1", 0)


def _ack(data: bytes) -> None:
    ack.verify_ack(data, _CLOUD_SIGNER.public_key())


def _hl7_message(data: bytes) -> None:
    from protocol.hl7 import message

    message.parse(data)


def _hl7_ack(data: bytes) -> None:
    from protocol.hl7 import ack as hl7_ack

    hl7_ack.parse_ack(data)


def _mllp_stream(data: bytes) -> None:
    from protocol.hl7 import mllp

    decoder = mllp.StreamDecoder()
    for i in range(0, len(data), 7):  # split reads, as TCP delivers them
        decoder.feed(data[i:i + 7])


def _mch_case(data: bytes) -> None:
    try:
        case = case_from_json(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return
    validate(case)
    missing(case)


def _stow_multipart(data: bytes) -> None:
    """A STOW-RS request: the first line is the Content-Type header, the rest the body."""
    from cloud.dicom.multipart import parse_multipart, stow_boundary

    head, _, body = data.partition(b"\n")
    try:
        boundary = stow_boundary(head.decode("latin-1"))
    except Exception as exc:  # only MultipartError may escape; re-raise anything else
        from cloud.dicom.errors import MultipartError

        if isinstance(exc, MultipartError):
            boundary = b"b0undary"
        else:
            raise
    parse_multipart(body, boundary, max_parts=50, max_part_bytes=1 << 16)


def _dicom_part10(data: bytes) -> None:
    from cloud.dicom.part10 import split_part10

    split_part10(data)


def _mch_response(data: bytes) -> None:
    """An MCH platform answer: 2 bytes of HTTP status, then the body (Retry-After from the body's tail)."""
    from cloud.mch.client import _classify

    status = 100 + int.from_bytes(data[:2], "big") % 500
    text = data[2:].decode("utf-8", "replace")
    _classify(status, text, text[-6:] or None)


def _toml_file(data: bytes, suffix: str) -> Path:
    import tempfile

    fd, name = tempfile.mkstemp(suffix=suffix)
    with open(fd, "wb") as f:
        f.write(data)
    return Path(name)


def _hub_config(data: bytes) -> None:
    from edge.config import load

    path = _toml_file(data, "-hub.toml")
    try:
        load(path)
    finally:
        path.unlink()


def _cloud_config(data: bytes) -> None:
    from cloud.config import parse

    parse(data.decode("utf-8", "replace"), Path("/nonexistent/cloud.toml"))


Target = tuple[Callable[[bytes], None], tuple[type[BaseException], ...]]

TARGETS: dict[str, Target] = {
    "envelope": (_envelope, (ProtocolError,)),
    "batch-body": (_body, (ProtocolError,)),
    "idnum": (_idnum, (ProtocolError,)),
    "command": (_command, (ProtocolError,)),
    "ack": (_ack, (ProtocolError,)),
    "mch-case": (_mch_case, ()),
    "hl7-message": (_hl7_message, (ProtocolError,)),
    "hl7-ack": (_hl7_ack, (ProtocolError,)),
    "mllp-stream": (_mllp_stream, (ProtocolError,)),
}


@cache
def _cloud_targets() -> dict[str, Target]:
    """Targets of the cloud's and hub's own parsers (need the cloud/edge extras installed)."""
    from cloud.dicom.errors import DicomError
    from cloud.errors import ConfigError as CloudConfigError
    from cloud.mch.client import UploadError
    from edge.errors import ConfigError as HubConfigError

    return {
        "stow-multipart": (_stow_multipart, (DicomError,)),
        "dicom-part10": (_dicom_part10, (DicomError,)),
        "mch-response": (_mch_response, (UploadError,)),
        "hub-config": (_hub_config, (HubConfigError,)),
        "cloud-config": (_cloud_config, (CloudConfigError,)),
    }


@cache
def all_targets() -> dict[str, Target]:
    """The static targets, the cloud's and hub's parsers, and one per registered device codec (``codec:<name>``)."""
    targets = dict(TARGETS)
    with contextlib.suppress(ImportError):  # a hub-only install has no cloud parts
        targets.update(_cloud_targets())
    try:
        from drivers.errors import DriverError
        from drivers.registry import codecs
    except ImportError:  # a hub-only install without the drivers' dependencies
        return targets
    for name, info in codecs().items():
        targets[f"codec:{name}"] = (info.decode, (DriverError, ProtocolError))
    return targets


def run_one(name: str, data: bytes) -> None:
    """Feed ``data`` to target ``name``; documented errors are swallowed, others propagate."""
    func, allowed = all_targets()[name]
    with contextlib.suppress(allowed):
        func(data)


def seed_envelope() -> bytes:
    """A valid sealed batch (seed for the ``envelope`` target)."""
    from protocol.model import Observation, Reading

    r = Reading(hub_id="hub-1", epoch=1, seq=1, at=1, device_id="d", station_id="s", kind="temperature",
                observations=(Observation(code="8310-5", value=36.6, unit="Cel"),))
    return envelope.seal([r], hub_id="hub-1", epoch=1, signer=_HUB, recipient=_CLOUD.public(), created_ms=0)
