"""The CA bundle: the cloud's HPKE and signing keys, trusted because the fleet CA signed them."""

from __future__ import annotations

import base64

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from protocol import envelope
from protocol.keys import RecipientPrivate, SuiteId
from protocol.model import Observation, Reading
from provisioning.bundle import CloudKeys, SignedBundle, sign_bundle, verify_bundle
from provisioning.ca import FleetCA, fleet_ca_key
from provisioning.errors import BundleError
from tests.provisioning.conftest import NOW


def _keys() -> tuple[dict[SuiteId, RecipientPrivate], ed25519.Ed25519PrivateKey, CloudKeys]:
    recipients = {s: RecipientPrivate.generate(s) for s in SuiteId}
    signing = ed25519.Ed25519PrivateKey.generate()
    return recipients, signing, CloudKeys(tuple(r.public() for r in recipients.values()), signing.public_key())


def test_round_trip_and_the_hub_can_seal_to_the_published_keys(fleet_ca: FleetCA) -> None:
    recipients, signing, keys = _keys()
    bundle = sign_bundle(fleet_ca, keys, now_ms=NOW)
    stored = msgspec.json.decode(msgspec.json.encode(bundle), type=SignedBundle)
    got = verify_bundle(stored, fleet_ca_key(fleet_ca.cert))
    assert got.signing_key == signing.public_key()
    assert [r.suite for r in got.recipients] == list(SuiteId)
    hub = ed25519.Ed25519PrivateKey.generate()
    reading = Reading(hub_id="h", epoch=1, seq=1, at=NOW, device_id="bp", station_id="1", kind="blood_pressure",
                      observations=(Observation(code="8480-6", value=120.0, unit="mm[Hg]"),))
    for suite in SuiteId:  # both suites, including the post-quantum hybrid
        sealed = envelope.seal([reading], hub_id="h", epoch=1, signer=hub, recipient=got.recipient(suite))
        _, records = envelope.open_batch(sealed, signer=hub.public_key(),
                                         recipients={r.public().key_id: r for r in recipients.values()})
        assert [r.observations for r in records] == [reading.observations]


def test_bundle_signed_by_another_ca_is_refused(fleet_ca: FleetCA) -> None:
    rogue = FleetCA.create("rogue", now_ms=NOW)
    bundle = sign_bundle(rogue, _keys()[2], now_ms=NOW)
    with pytest.raises(BundleError, match="does not verify"):
        verify_bundle(bundle, fleet_ca_key(fleet_ca.cert))


def test_tampered_bundle_is_refused(fleet_ca: FleetCA) -> None:
    bundle = sign_bundle(fleet_ca, _keys()[2], now_ms=NOW)
    body = bytearray(base64.b64decode(bundle.body))
    body[-5] ^= 1
    with pytest.raises(BundleError):
        verify_bundle(SignedBundle(base64.b64encode(bytes(body)).decode(), bundle.sig), fleet_ca_key(fleet_ca.cert))
    with pytest.raises(BundleError):
        verify_bundle(SignedBundle("not base64!", bundle.sig), fleet_ca_key(fleet_ca.cert))


def test_a_bundle_needs_a_recipient_and_names_a_missing_suite(fleet_ca: FleetCA) -> None:
    _, signing, keys = _keys()
    with pytest.raises(BundleError):
        sign_bundle(fleet_ca, CloudKeys((), signing.public_key()), now_ms=NOW)
    only_x = CloudKeys(keys.recipients[:1], signing.public_key())
    got = verify_bundle(sign_bundle(fleet_ca, only_x, now_ms=NOW), fleet_ca_key(fleet_ca.cert))
    with pytest.raises(BundleError, match="mlkem768x25519"):
        got.recipient(SuiteId.MLKEM768X25519_AES256GCM)
