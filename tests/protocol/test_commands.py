"""Signed hub commands."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from protocol.commands import CommandBody, CommandError, sign_command, topic, verify_command

CLOUD = ed25519.Ed25519PrivateKey.generate()
BODY = CommandBody(id="c1", hub_id="hub-1", name="sync-now", issued_ms=1000, expires_ms=5000)


def test_round_trip_and_topics() -> None:
    assert verify_command(sign_command(BODY, CLOUD), CLOUD.public_key(), "hub-1", 2000) == BODY
    assert topic("hub-1", "commands") == "mchub/hubs/hub-1/commands"


@pytest.mark.parametrize(
    ("data", "hub", "now", "match"),
    [
        (sign_command(BODY, ed25519.Ed25519PrivateKey.generate()), "hub-1", 2000, "signature"),
        (sign_command(BODY, CLOUD), "hub-2", 2000, "addressed"),
        (sign_command(BODY, CLOUD), "hub-1", 6000, "expired"),
        (b"{not json", "hub-1", 2000, "signed JSON"),
        (b'{"body":"!!","sig":"AA=="}', "hub-1", 2000, "signed JSON"),
    ],
)
def test_refusals(data: bytes, hub: str, now: int, match: str) -> None:
    with pytest.raises(CommandError, match=match):
        verify_command(data, CLOUD.public_key(), hub, now)
