"""Fuzz targets: each takes arbitrary bytes and may raise only its documented error types.

Anything else escaping a target is a bug: ``fuzz/run.py`` (atheris, coverage-guided)
reports it as a crash, and ``tests/test_fuzz_regressions.py`` replays every saved input
in CI. Device codecs are added automatically from ``drivers.registry``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import cache

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


def _mch_case(data: bytes) -> None:
    try:
        case = case_from_json(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return
    validate(case)
    missing(case)


Target = tuple[Callable[[bytes], None], tuple[type[BaseException], ...]]

TARGETS: dict[str, Target] = {
    "envelope": (_envelope, (ProtocolError,)),
    "batch-body": (_body, (ProtocolError,)),
    "idnum": (_idnum, (ProtocolError,)),
    "command": (_command, (ProtocolError,)),
    "ack": (_ack, (ProtocolError,)),
    "mch-case": (_mch_case, ()),
}


@cache
def all_targets() -> dict[str, Target]:
    """The static targets plus one per registered device codec (``codec:<name>``)."""
    targets = dict(TARGETS)
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
