"""The cloud's signed ack."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from protocol.ack import Ack, AckStatus, batch_digest, sign_ack, verify_ack
from protocol.errors import AckError

CLOUD = ed25519.Ed25519PrivateKey.generate()


def make(batch: bytes = b"sealed") -> bytes:
    return sign_ack(Ack(AckStatus.STORED, "hub-1", 7, 42, 40, 42, batch_digest(batch), 1_700_000_000_000), CLOUD)


def test_round_trip() -> None:
    ack = verify_ack(make(), CLOUD.public_key(), b"sealed")
    assert (ack.status, ack.hub_id, ack.epoch, ack.acked_through_seq, ack.expected_seq) == (
        AckStatus.STORED, "hub-1", 7, 42, 43)


def test_any_flipped_byte_is_refused() -> None:
    data = make()
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x80
        with pytest.raises(AckError):
            verify_ack(bytes(bad), CLOUD.public_key())


def test_ack_for_another_batch_or_from_another_key_is_refused() -> None:
    with pytest.raises(AckError, match="different batch"):
        verify_ack(make(b"one"), CLOUD.public_key(), b"two")
    with pytest.raises(AckError, match="key"):
        verify_ack(make(), ed25519.Ed25519PrivateKey.generate().public_key())
