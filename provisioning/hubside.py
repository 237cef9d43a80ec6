"""The hub's side of provisioning: its state directory, enrollment and key rotation over HTTP.

``mchub edge enroll`` and the hub daemon call these. State directory (0700; every file
0600, written atomically):

| file | holds |
|---|---|
| ``hub.pem`` | the hub's Ed25519 private key, then its certificate (one rename swaps both) |
| ``hub.next.key.pem`` | the next key while a rotation is under way (re-sent after a crash: same answer) |
| ``ca.cert.pem`` | the fleet CA, pinned at enrollment |
| ``bundle.json`` | the CA-signed cloud keys (:mod:`provisioning.bundle`) |
| ``config.json`` | the cloud-signed device configuration (:mod:`provisioning.inventory`) |
| ``mqtt.json`` | broker URL, username, password |
| ``identity.json`` | hub id, site id, cloud URL |
| ``verified.json`` | what ``hub.pem`` and ``ca.cert.pem`` were verified to say (:mod:`provisioning.verified`) |

A running hub does not import X.509 (1.1 MB it would keep for months, issue 21): enrollment,
rotation and :func:`load_state` verify the certificates with it only when ``verified.json`` does
not match them, and the X.509 modules are imported inside those functions, not here.

Enrollment is safe to re-run: the key in ``hub.pem`` (or a key left by an interrupted
first run in ``hub.next.key.pem``) is reused, so the cloud recognises the re-run.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from protocol.ids import now_ms as _now_ms
from provisioning.bundle import CloudKeys, SignedBundle, verify_bundle
from provisioning.errors import CertificateExpired, ProvisioningError
from provisioning.hubauth import sign_request
from provisioning.inventory import HubConfig, SignedConfig, verify_config
from provisioning.keyfiles import check_private_mode, load_private_key, save_private_key, write_private_file
from provisioning.mqtt import MqttCredentials
from provisioning.verified import VERIFIED, Verified, digest, read_verified, should_rotate

if TYPE_CHECKING:
    from provisioning.ca import HubIdentity
    from provisioning.client import HttpClient

log = logging.getLogger(__name__)

HUB_PEM = "hub.pem"
NEXT_KEY = "hub.next.key.pem"


class Identity(msgspec.Struct, frozen=True):
    """``identity.json``."""

    hub_id: str
    site_id: str
    cloud_url: str


@dataclass(frozen=True)
class HubState:
    """Everything the hub daemon needs from its state directory, verified."""

    identity: Identity
    key: ed25519.Ed25519PrivateKey
    verified: Verified  #: the certificates' validity and the fleet CA's key
    cloud: CloudKeys
    config: HubConfig
    mqtt: MqttCredentials
    expired: bool = False  #: the certificate has expired: keep collecting readings, re-enroll to sync again

    def rotation_due(self, now_ms: int, *, commanded: bool = False) -> bool:
        """True when the hub should call :func:`rotate` now (last third of the certificate's life, or told to)."""
        v = self.verified
        return not self.expired and should_rotate(v.not_before_ms, v.not_after_ms, now_ms, commanded=commanded)


def _client(url: str, cafile: str | None) -> HttpClient:
    """The enrollment client, imported when the hub first talks to the enrollment API: urllib.request with
    http.client and email behind it held ~1 MB of a running hub that never does (issue 21)."""
    from provisioning.client import HttpClient

    return HttpClient(url, cafile=cafile)


def _write(directory: Path, name: str, data: bytes) -> None:
    write_private_file(directory / name, data, overwrite=True)


def _key_pem(key: ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pending_key(state_dir: Path) -> ed25519.Ed25519PrivateKey:
    """The key waiting in ``hub.next.key.pem``, created if absent."""
    path = state_dir / NEXT_KEY
    if not path.exists():
        save_private_key(path, ed25519.Ed25519PrivateKey.generate())
    return load_private_key(path)


def _load_hub_pem(state_dir: Path) -> tuple[ed25519.Ed25519PrivateKey, bytes]:
    """The hub's private key and the whole file (key, then certificate)."""
    path = state_dir / HUB_PEM
    check_private_mode(path)
    data = path.read_bytes()
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ProvisioningError(f"{path} does not hold an Ed25519 key")
    return key, data


def _verify_certificates(state_dir: Path, hub_pem: bytes, ca_pem: bytes, *, now_ms: int) -> tuple[Verified, bool]:
    """Verify ``hub.pem`` against ``ca.cert.pem`` with X.509, keep what they say in ``verified.json``.

    Returns the facts and whether the hub certificate has expired. Another CA, a bad signature
    or a malformed file raise :class:`~provisioning.errors.CertificateError`.
    """
    from provisioning.ca import fleet_ca_key, load_certificate, verify_hub_certificate  # X.509: see the module doc

    cert, ca_cert = load_certificate(hub_pem), load_certificate(ca_pem)
    not_after_ms = int(cert.not_valid_after_utc.timestamp() * 1000)
    expired = False
    try:
        verify_hub_certificate(cert, ca_cert, now_ms=now_ms)
    except CertificateExpired:
        expired = True
        verify_hub_certificate(cert, ca_cert, now_ms=not_after_ms)
    verified = Verified(hub_pem_sha256=digest(hub_pem), ca_pem_sha256=digest(ca_pem),
                        not_before_ms=int(cert.not_valid_before_utc.timestamp() * 1000), not_after_ms=not_after_ms,
                        ca=fleet_ca_key(ca_cert))
    try:
        _write(state_dir, VERIFIED, msgspec.json.encode(verified))
    except OSError as exc:  # e.g. a read-only look at the state by another user: the facts still hold
        log.warning("could not keep %s (%s); the next start verifies the certificates again",
                    state_dir / VERIFIED, exc)
    return verified, expired


def enroll(
    cloud_url: str,
    token: str,
    state_dir: Path,
    *,
    hub_serial: str,
    site_id: str | None = None,
    ca_fingerprint: str | None = None,
    cafile: str | None = None,
    software: str = "",
) -> HubState:
    """Enroll this hub: key generated here, request sent, answer verified, state written."""
    from provisioning.enrollment import EnrollResponse, accept_response, build_request  # X.509: see the module doc

    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(state_dir, 0o700)
    if (state_dir / HUB_PEM).exists():
        key, _ = _load_hub_pem(state_dir)
    else:
        key = _pending_key(state_dir)  # survives a crash before hub.pem exists: the re-run reuses it
    request = build_request(key, token, hub_serial, site_id=site_id, software=software)
    response = _client(cloud_url, cafile).typed("POST", "/api/v1/enroll", EnrollResponse, request)
    got = accept_response(response, key, token, ca_fingerprint=ca_fingerprint)
    _write(state_dir, "ca.cert.pem", response.ca_certificate_pem.encode())
    _write(state_dir, "bundle.json", msgspec.json.encode(response.bundle))
    _write(state_dir, "config.json", msgspec.json.encode(response.config))
    _write(state_dir, "mqtt.json", msgspec.json.encode(response.mqtt))
    _write(state_dir, "identity.json", msgspec.json.encode(Identity(response.hub_id, response.site_id, cloud_url)))
    hub_pem = _key_pem(key) + response.certificate_pem.encode()
    _write(state_dir, HUB_PEM, hub_pem)
    (state_dir / NEXT_KEY).unlink(missing_ok=True)
    verified, _ = _verify_certificates(state_dir, hub_pem, response.ca_certificate_pem.encode(), now_ms=_now_ms())
    return HubState(Identity(response.hub_id, response.site_id, cloud_url), key, verified, got.cloud, got.config,
                    got.mqtt)


def load_state(state_dir: Path, *, now_ms: int | None = None) -> HubState:
    """Read and verify the state directory (the hub daemon calls this at start and on reload).

    An expired certificate does not stop the hub: it still collects and stores readings
    (``expired`` is set; the status page says to re-enroll), and syncs again after a new
    enrollment. A certificate from another CA, or a bad signature, is an error.

    The certificates are verified with X.509 only when ``verified.json`` does not match them
    (the first start after an upgrade, or after the files changed); otherwise its facts are used.
    """
    now = _now_ms() if now_ms is None else now_ms
    try:
        identity = msgspec.json.decode((state_dir / "identity.json").read_bytes(), type=Identity)
        key, hub_pem = _load_hub_pem(state_dir)
        ca_pem = (state_dir / "ca.cert.pem").read_bytes()
        bundle = msgspec.json.decode((state_dir / "bundle.json").read_bytes(), type=SignedBundle)
        signed_config = msgspec.json.decode((state_dir / "config.json").read_bytes(), type=SignedConfig)
        mqtt = msgspec.json.decode((state_dir / "mqtt.json").read_bytes(), type=MqttCredentials)
    except FileNotFoundError as exc:
        raise ProvisioningError(
            f"此网关尚未注册 / this hub is not enrolled ({exc.filename} missing); run "
            "`mchub edge enroll --cloud URL --token TOKEN`"
        ) from exc
    except (OSError, ValueError) as exc:
        raise ProvisioningError(f"hub state in {state_dir} is damaged: {exc}; re-enroll with a new token") from exc
    verified = read_verified(state_dir, hub_pem, ca_pem)
    if verified is None:
        verified, expired = _verify_certificates(state_dir, hub_pem, ca_pem, now_ms=now)
    else:
        expired = not verified.not_before_ms <= now <= verified.not_after_ms
    cloud = verify_bundle(bundle, verified.ca)
    config = verify_config(signed_config, cloud.signing_key, identity.hub_id)
    return HubState(identity, key, verified, cloud, config, mqtt, expired)


def rotate(state_dir: Path, *, cafile: str | None = None, now_ms: int | None = None) -> HubIdentity:
    """Rotate the hub key: new key here, request signed by the old one, swap both files in one rename."""
    from provisioning.ca import fleet_ca_key, load_certificate  # X.509: see the module doc
    from provisioning.rotation import RotateResponse, accept_rotation, build_rotation

    now = _now_ms() if now_ms is None else now_ms
    identity = msgspec.json.decode((state_dir / "identity.json").read_bytes(), type=Identity)
    old_key, _ = _load_hub_pem(state_dir)
    new_key = _pending_key(state_dir)
    if new_key.public_key() == old_key.public_key():  # crashed after the swap last time
        (state_dir / NEXT_KEY).unlink()
        new_key = _pending_key(state_dir)
    request = build_rotation(identity.hub_id, old_key, new_key)
    client = _client(identity.cloud_url, cafile)
    response = client.typed("POST", "/api/v1/rotate", RotateResponse, request)
    ca_pem = (state_dir / "ca.cert.pem").read_bytes()
    hub = accept_rotation(response, new_key, ca_pem.decode(), hub_id=identity.hub_id, now_ms=now)
    cloud = verify_bundle(response.bundle, fleet_ca_key(load_certificate(ca_pem)))
    verify_config(response.config, cloud.signing_key, identity.hub_id)
    _write(state_dir, "bundle.json", msgspec.json.encode(response.bundle))
    _write(state_dir, "config.json", msgspec.json.encode(response.config))
    hub_pem = _key_pem(new_key) + response.certificate_pem.encode()
    _write(state_dir, HUB_PEM, hub_pem)
    (state_dir / NEXT_KEY).unlink(missing_ok=True)
    _verify_certificates(state_dir, hub_pem, ca_pem, now_ms=now)  # a crash before this: the next start verifies
    return hub


def fetch_config(
    state: HubState, *, cafile: str | None = None, now_ms: int | None = None
) -> tuple[SignedConfig, HubConfig]:
    """Fetch and verify the current configuration (``GET /api/v1/hub/config``, signed request).

    Apply it if ``inventory.should_apply`` says so, then keep it with :func:`store_config`.
    """
    now = _now_ms() if now_ms is None else now_ms
    path = "/api/v1/hub/config"
    headers = sign_request(state.key, hub_id=state.identity.hub_id, method="GET", path=path, body=b"", now_ms=now)
    answer = _client(state.identity.cloud_url, cafile).request("GET", path, headers=headers)
    try:
        signed = msgspec.convert(answer["config"], SignedConfig)
    except (msgspec.ValidationError, KeyError, TypeError) as exc:
        raise ProvisioningError(f"config answer is malformed: {exc}") from exc
    return signed, verify_config(signed, state.cloud.signing_key, state.identity.hub_id)


def store_config(state_dir: Path, signed: SignedConfig) -> None:
    """Keep an applied configuration document (from fetch_config or an apply-config command)."""
    _write(state_dir, "config.json", msgspec.json.encode(signed))

