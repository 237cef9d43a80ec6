"""The sealed sync batch: round trips, tampering, wrong keys (docs/protocol.md)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given

from protocol import envelope
from protocol.errors import (
    BadSignature,
    BodyTooLarge,
    EnvelopeError,
    MalformedEnvelope,
    UnknownSuite,
    UnsupportedVersion,
    WrongRecipient,
)
from protocol.keys import RecipientPrivate, SuiteId
from protocol.model import Observation, Reading, Record
from tests.protocol.strategies import record_streams

HUB = ed25519.Ed25519PrivateKey.generate()
CLOUD = {s: RecipientPrivate.generate(s) for s in SuiteId}


def readings(n: int = 3, first: int = 1) -> list[Record]:
    return [
        Reading(hub_id="hub-1", epoch=7, seq=first + i, at=1_700_000_000_000 + i * 1000, device_id="bp-1",
                station_id="s1", kind="blood_pressure", raw=b"\x1e\x78\x00",
                observations=(Observation(code="8480-6", value=120.0 + i, unit="mm[Hg]"),))
        for i in range(n)
    ]


def seal(records: list[Record], suite: SuiteId = SuiteId.X25519_AES256GCM) -> bytes:
    return envelope.seal(records, hub_id="hub-1", epoch=7, signer=HUB, recipient=CLOUD[suite].public())


def open_(data: bytes, signer: ed25519.Ed25519PrivateKey = HUB) -> list[Record]:
    keys = {k.public().key_id: k for k in CLOUD.values()}
    return envelope.open_batch(data, signer=signer.public_key(), recipients=keys)[1]


@pytest.mark.parametrize("suite", list(SuiteId), ids=lambda s: s.label)
def test_round_trip_each_suite(suite: SuiteId) -> None:
    records = readings(5, first=41)
    data = seal(records, suite)
    header = envelope.parse_header(data)
    assert (header.hub_id, header.epoch, header.first_seq, header.last_seq, header.count) == ("hub-1", 7, 41, 45, 5)
    assert header.suite is suite
    opened = open_(data)
    for r in records:  # the uid is derived on both sides
        from protocol.ids import reading_uid

        r.uid = reading_uid("hub-1", 7, r.seq, r.at)
    assert opened == records


@given(record_streams())
def test_round_trip_random_streams(records: list[Record]) -> None:
    assert open_(seal(records)) == records


@pytest.mark.parametrize("suite", list(SuiteId), ids=lambda s: s.label)
def test_every_single_byte_flip_is_rejected_with_a_typed_error(suite: SuiteId) -> None:
    data = seal(readings(2), suite)
    header = envelope.parse_header(data)
    body_start = header.header_len + 4
    for i in range(len(data)):
        tampered = bytearray(data)
        tampered[i] ^= 0x01
        with pytest.raises(EnvelopeError) as err:
            open_(bytes(tampered))
        if i < 4 or i == 6:
            assert isinstance(err.value, MalformedEnvelope), i
        elif i == 4:
            assert isinstance(err.value, UnsupportedVersion), i
        elif i == 5:
            assert isinstance(err.value, UnknownSuite | WrongRecipient | BadSignature), i
        elif i >= body_start:  # sealed body and signature: only the signature can tell
            assert isinstance(err.value, BadSignature), i
        else:
            assert isinstance(err.value, MalformedEnvelope | BadSignature | BodyTooLarge), i


def test_truncated_and_extended_batches_are_malformed() -> None:
    data = seal(readings(2))
    for cut in (0, 3, 20, 61, len(data) - 1):
        with pytest.raises(MalformedEnvelope):
            open_(data[:cut])
    with pytest.raises(MalformedEnvelope):
        open_(data + b"\x00")


def test_batch_sealed_for_another_cloud_key_is_wrong_recipient() -> None:
    other = RecipientPrivate.generate()
    data = envelope.seal(readings(), hub_id="hub-1", epoch=7, signer=HUB, recipient=other.public())
    with pytest.raises(WrongRecipient):
        open_(data)


def test_batch_signed_by_another_hub_key_is_bad_signature() -> None:
    thief = ed25519.Ed25519PrivateKey.generate()
    data = envelope.seal(readings(), hub_id="hub-1", epoch=7, signer=thief, recipient=CLOUD[SuiteId(1)].public())
    with pytest.raises(BadSignature):
        open_(data)  # verified against hub-1's registered key


def test_records_must_be_consecutive() -> None:
    records = readings(3)
    records[2].seq = 9
    with pytest.raises(ValueError, match="consecutive"):
        seal(records)


def test_hub_id_is_restricted() -> None:
    with pytest.raises(ValueError, match="hub id"):
        envelope.seal(readings(), hub_id="hub 1/../x", epoch=7, signer=HUB, recipient=CLOUD[SuiteId(1)].public())
