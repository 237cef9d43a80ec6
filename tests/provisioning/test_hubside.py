"""The hub side over real HTTP: sync across rotation and revocation, and crashes mid-enrollment/rotation.

The cloud is the test peer (tests/provisioning/peer.py); its batch route does exactly the
provisioning part of ingest — resolve the signer, refuse revoked hubs, open the batch.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from protocol import envelope
from protocol.keys import SuiteId
from protocol.model import Observation, Reading
from provisioning import admin, enrollment, hubside, rotation
from provisioning.ca import FleetCA, certificate_pem
from provisioning.client import HttpClient
from provisioning.errors import ClientError, UntrustedCertificate
from provisioning.hubs import revoke_hub
from provisioning.verified import VERIFIED
from tests.provisioning.conftest import run_sync as _run
from tests.provisioning.peer import PeerServer, PeerState

BATCH = {"Content-Type": "application/vnd.mchub.batch"}


def _token(state: PeerState, site: str = "dongcheng") -> str:
    if _run(state.stores.sites.get(site)) is None:
        _run(admin.add_site(state.stores, site_id=site, name="东城", actor="alice", now_ms=state.clock()))
    return _run(admin.create_token(state.stores, site_id=site, actor="alice", now_ms=state.clock())).text


def _batch(hub: hubside.HubState, seq: int) -> bytes:
    reading = Reading(hub_id=hub.identity.hub_id, epoch=9, seq=seq, at=1_750_000_000_000 + seq, device_id="s1-ble-bp",
                      station_id="1", kind="blood_pressure",
                      observations=(Observation(code="8480-6", value=110.0 + seq, unit="mm[Hg]"),))
    return envelope.seal([reading], hub_id=hub.identity.hub_id, epoch=9, signer=hub.key,
                         recipient=hub.cloud.recipient(SuiteId.X25519_AES256GCM))


def test_sync_through_rotation_then_revocation(peer: tuple[PeerServer, PeerState], tmp_path: Path) -> None:
    server, state = peer
    hub_dir = tmp_path / "hub"
    hub = hubside.enroll(server.url, _token(state), hub_dir, hub_serial="PI-0001")
    post = HttpClient(server.url).request
    assert post("POST", "/api/v1/batches", raw_body=_batch(hub, 1), headers=BATCH) == {"stored": 1}
    in_flight = _batch(hub, 2)  # sealed with the old key before the switch
    hubside.rotate(hub_dir)
    new = hubside.load_state(hub_dir)
    post("POST", "/api/v1/batches", raw_body=in_flight, headers=BATCH)  # old key: inside the overlap
    post("POST", "/api/v1/batches", raw_body=_batch(new, 3), headers=BATCH)
    assert [r.seq for r in state.received] == [1, 2, 3]  # no reading refused before revocation

    _run(revoke_hub(state.stores, new.identity.hub_id, actor="alice", reason="test", now_ms=state.clock()))
    for attempt in (lambda: post("POST", "/api/v1/batches", raw_body=_batch(new, 4), headers=BATCH),
                    lambda: hubside.fetch_config(new), lambda: hubside.rotate(hub_dir)):
        with pytest.raises(ClientError) as refused:
            attempt()
        assert (refused.value.http_status, refused.value.remote_reason) == (403, "revoked")
    assert len(state.received) == 3  # kept
    actions = [e.action for e in _run(state.stores.audit.list())]
    assert actions[-4:] == ["token.create", "hub.enroll", "hub.rotate", "hub.revoke"]


def test_enrollment_interrupted_after_the_cloud_answered(peer: tuple[PeerServer, PeerState], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    server, state = peer
    token = _token(state)
    real = enrollment.accept_response

    def power_cut(*args: object, **kwargs: object) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(enrollment, "accept_response", power_cut)
    with pytest.raises(OSError):
        hubside.enroll(server.url, token, tmp_path, hub_serial="PI-0001")
    assert (tmp_path / hubside.NEXT_KEY).exists() and not (tmp_path / hubside.HUB_PEM).exists()
    monkeypatch.setattr(enrollment, "accept_response", real)
    hub = hubside.enroll(server.url, token, tmp_path, hub_serial="PI-0001")  # same key: not "token used"
    assert hub.identity.hub_id == "dongcheng-h01"
    assert not (tmp_path / hubside.NEXT_KEY).exists()
    assert len(_run(state.stores.hubs.list())) == 1


def test_rotation_interrupted_after_the_cloud_answered(peer: tuple[PeerServer, PeerState], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    server, state = peer
    hub = hubside.enroll(server.url, _token(state), tmp_path, hub_serial="PI-0001")
    real = rotation.accept_rotation

    def power_cut(*args: object, **kwargs: object) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(rotation, "accept_rotation", power_cut)
    with pytest.raises(OSError):
        hubside.rotate(tmp_path)
    assert hubside.load_state(tmp_path).key.public_key() == hub.key.public_key()  # still the old key
    monkeypatch.setattr(rotation, "accept_rotation", real)
    hubside.rotate(tmp_path)
    record = _run(state.stores.hubs.get(hub.identity.hub_id))
    assert record is not None and len(record.keys) == 2  # the re-sent request got the same certificate

    # crash between the swap and removing the next-key file: the next rotation notices
    (tmp_path / hubside.NEXT_KEY).write_bytes((tmp_path / hubside.HUB_PEM).read_bytes().split(b"-----BEGIN CERT")[0])
    (tmp_path / hubside.NEXT_KEY).chmod(0o600)
    hubside.rotate(tmp_path)
    record = _run(state.stores.hubs.get(hub.identity.hub_id))
    assert record is not None and len(record.keys) == 3


def test_an_expired_hub_still_loads_and_knows_when_to_rotate(peer: tuple[PeerServer, PeerState],
                                                              tmp_path: Path) -> None:
    server, state = peer
    hub = hubside.enroll(server.url, _token(state), tmp_path, hub_serial="PI-0001")
    issued = hub.verified.not_before_ms + 3_600_000
    day = 86_400_000
    assert not hub.rotation_due(issued + day)
    assert hub.rotation_due(issued + day, commanded=True)
    assert hub.rotation_due(issued + 21 * day)
    late = hubside.load_state(tmp_path, now_ms=issued + 31 * day)  # offline for a month: still runs
    assert late.expired and not late.rotation_due(issued + 31 * day)
    assert not hubside.load_state(tmp_path).expired


def _load_in_a_new_process(state_dir: Path) -> list[str]:
    """Load the state as the hub daemon's start does, in a fresh interpreter: hub id, and whether X.509 was imported."""
    code = ("import sys; from pathlib import Path; from provisioning import hubside; "
            f"s = hubside.load_state(Path({str(state_dir)!r})); "
            "print(s.identity.hub_id, 'cryptography.x509' in sys.modules)")
    root = Path(__file__).resolve().parents[2]
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=root).stdout.split()


def test_a_running_hub_reads_what_its_certificates_say_without_x509(peer: tuple[PeerServer, PeerState],
                                                                     tmp_path: Path) -> None:
    """verified.json spares the daemon cryptography's X.509 modules, ~1 MB for months (issue 21)."""
    server, state = peer
    hub = hubside.enroll(server.url, _token(state), tmp_path, hub_serial="PI-0001")
    assert (tmp_path / VERIFIED).stat().st_mode & 0o777 == 0o600
    assert _load_in_a_new_process(tmp_path) == [hub.identity.hub_id, "False"]

    kept = (tmp_path / VERIFIED).read_bytes()
    hubside.rotate(tmp_path)  # a new certificate: rotation keeps what it says
    assert (tmp_path / VERIFIED).read_bytes() != kept
    assert _load_in_a_new_process(tmp_path) == [hub.identity.hub_id, "False"]

    (tmp_path / VERIFIED).unlink()  # a hub upgraded from before verified.json: one start verifies and keeps it
    assert _load_in_a_new_process(tmp_path) == [hub.identity.hub_id, "True"]
    assert _load_in_a_new_process(tmp_path) == [hub.identity.hub_id, "False"]
    assert hubside.load_state(tmp_path).verified == hubside.load_state(tmp_path).verified


def test_a_replaced_ca_certificate_is_verified_again_not_taken_from_verified_json(peer: tuple[PeerServer, PeerState],
                                                                                 tmp_path: Path) -> None:
    server, state = peer
    hubside.enroll(server.url, _token(state), tmp_path, hub_serial="PI-0001")
    rogue = FleetCA.create("rogue", now_ms=state.clock())
    (tmp_path / "ca.cert.pem").write_text(certificate_pem(rogue.cert))
    with pytest.raises(UntrustedCertificate, match="not issued by this fleet CA"):
        hubside.load_state(tmp_path)


def test_an_expired_hub_without_verified_json_still_loads(peer: tuple[PeerServer, PeerState], tmp_path: Path) -> None:
    server, state = peer
    hub = hubside.enroll(server.url, _token(state), tmp_path, hub_serial="PI-0001")
    (tmp_path / VERIFIED).unlink()
    late = hubside.load_state(tmp_path, now_ms=hub.verified.not_after_ms + 1)
    assert late.expired and late.verified == hub.verified
    assert not hubside.load_state(tmp_path).expired


def test_a_state_directory_where_verified_json_cannot_be_written_still_loads(
        peer: tuple[PeerServer, PeerState], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server, state = peer
    hub = hubside.enroll(server.url, _token(state), tmp_path, hub_serial="PI-0001")
    (tmp_path / VERIFIED).unlink()
    (tmp_path / VERIFIED).mkdir()  # unwritable as a file, even for root
    assert hubside.load_state(tmp_path).verified == hub.verified
    assert "could not keep" in caplog.text and "verifies the certificates again" in caplog.text
