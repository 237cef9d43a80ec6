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


def test_refused_records_travel_in_a_version_2_ack_and_no_refusal_keeps_version_1() -> None:
    plain = make()
    assert plain[4] == 1  # byte for byte what a version-1 cloud sends
    ack = Ack(AckStatus.STORED, "hub-1", 7, 42, 40, 42, batch_digest(b"sealed"), 1_700_000_000_000,
              refused=((40, "unknown_code"), (42, "wrong_unit")))
    data = sign_ack(ack, CLOUD)
    assert data[4] == 2
    back = verify_ack(data, CLOUD.public_key(), b"sealed")
    assert back.refused == ((40, "unknown_code"), (42, "wrong_unit"))
    assert back.acked_through_seq == 42


@pytest.mark.parametrize("refused", [((39, "unknown_code"),), ((43, "x"),), ((41, "a"), (40, "b")),
                                     ((40, "Bad-Code"),), ((40, ""),), ((40, "a" * 33),)])
def test_a_refusal_outside_the_batch_out_of_order_or_with_a_bad_code_is_refused(
        refused: tuple[tuple[int, str], ...]) -> None:
    import struct

    from protocol.ack import _FIXED, VERSION_REFUSALS
    from protocol.keys import signing_key_id

    hid = b"hub-1"
    section = struct.pack(">I", len(refused)) + b"".join(
        struct.pack(">QB", s, len(r)) + r.encode() for s, r in refused)
    body = _FIXED.pack(b"MCHA", VERSION_REFUSALS, 0, 0, 7, 42, 40, 42, batch_digest(b"sealed"), 1,
                       signing_key_id(CLOUD.public_key()), len(hid)) + hid + section
    with pytest.raises(AckError):
        verify_ack(body + CLOUD.sign(body), CLOUD.public_key(), b"sealed")


def test_any_flipped_byte_of_a_version_2_ack_is_refused() -> None:
    data = sign_ack(Ack(AckStatus.STORED, "hub-1", 7, 42, 40, 42, batch_digest(b"s"), 1,
                        refused=((41, "not_finite"),)), CLOUD)
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x80
        with pytest.raises(AckError):
            verify_ack(bytes(bad), CLOUD.public_key())


def test_a_batch_of_100_000_refused_records_fits_one_ack() -> None:
    refused = tuple((seq, "unknown_code") for seq in range(1, 100_001))
    data = sign_ack(Ack(AckStatus.STORED, "hub-1", 7, 100_000, 1, 100_000, batch_digest(b"s"), 1, refused=refused),
                    CLOUD)
    assert verify_ack(data, CLOUD.public_key(), b"s").refused == refused
