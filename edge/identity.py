"""The hub's identity directory: who the hub is and the keys it holds.

Files (all written 0600, the directory 0700)::

    hub.json          {"hub_id": "clinic-042"}
    hub_ed25519.key   32-byte raw Ed25519 private key: signs batches (generated here, never leaves)
    hub_ed25519.prev  the previous signing key after `rotate-key` (used once if the cloud says 401)
    data.key          32-byte AES-256-GCM key: encrypts patient subjects at rest in hub.db
    cloud.json        the cloud's public keys: {"suite", "recipient" (hex HPKE key), "signing" (hex Ed25519)}

``mchub edge init --hub-id H --cloud-key cloud.json --config hub.toml`` creates it (in hub.toml's
``identity_dir``) and prints the ``mchub cloud hub add`` line that registers its public key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edge.errors import IdentityError
from protocol.keys import RecipientPublic, SuiteId, ed25519_raw, load_ed25519_public
from protocol.model import Subject
from provisioning import hubside
from provisioning.errors import ProvisioningError

log = logging.getLogger("edge.enrolled")
DATA_KEY = "data.key"  #: an enrolled hub's own data key (the file ``data.key`` of an initialised hub too)

_NONCE = 12


@dataclass(frozen=True)
class Identity:
    """Everything the hub needs to seal batches and check the cloud's answers."""

    directory: Path
    hub_id: str
    signer: ed25519.Ed25519PrivateKey
    previous: ed25519.Ed25519PrivateKey | None
    data_key: bytes
    recipient: RecipientPublic
    cloud_signing: ed25519.Ed25519PublicKey

    @property
    def public_hex(self) -> str:
        """The hub's Ed25519 public key, hex (what the cloud registers)."""
        return ed25519_raw(self.signer.public_key()).hex()

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        """AES-256-GCM with the data key: ``nonce || ciphertext``."""
        nonce = os.urandom(_NONCE)
        return nonce + AESGCM(self.data_key).encrypt(nonce, plaintext, aad)

    def subject_tag(self, subject: Subject) -> str | None:
        """Keyed hash (HMAC-SHA256 with the data key) of the ID number, None without one.

        Stored with a session so the same card read again continues it; without the data
        key it says nothing about the number.
        """
        if not subject.national_id:
            return None
        mac = hmac.new(self.data_key, b"mchub/subject-tag/" + subject.national_id.encode(), hashlib.sha256)
        return mac.hexdigest()[:32]

    def decrypt(self, sealed: bytes, aad: bytes) -> bytes:
        """Inverse of :meth:`encrypt`; raises IdentityError when the data key does not fit."""
        try:
            return AESGCM(self.data_key).decrypt(sealed[:_NONCE], sealed[_NONCE:], aad)
        except Exception as exc:
            raise IdentityError("stored subject does not decrypt with this hub's data key") from exc


def _write_secret(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_cloud_keys(path: Path, recipient: RecipientPublic, signing: ed25519.Ed25519PublicKey) -> None:
    """Write a cloud public-key file (what the cloud operator hands to a hub installer)."""
    doc = {"suite": recipient.suite.label, "recipient": recipient.raw.hex(), "signing": ed25519_raw(signing).hex()}
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def _read_cloud_keys(path: Path) -> tuple[RecipientPublic, ed25519.Ed25519PublicKey]:
    """Read a cloud key file: ours, or the cloud's own published document (``GET /api/v1/keys``).

    From the cloud's document the hub takes the ``x25519-aes256gcm`` key unless the
    document names another ``suite``.
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if "recipients" in doc:
            label = doc.get("suite", SuiteId.X25519_AES256GCM.label)
            raw, signing = doc["recipients"][label]["public_key"], doc["signing_public_key"]
        else:
            label, raw, signing = doc["suite"], doc["recipient"], doc["signing"]
        recipient = RecipientPublic(SuiteId.from_label(label), bytes.fromhex(raw))
        recipient.key()
        return recipient, load_ed25519_public(bytes.fromhex(signing))
    except FileNotFoundError:
        raise IdentityError(f"{path} does not exist: ask the cloud operator for the cloud key file") from None
    except Exception as exc:
        raise IdentityError(f"{path} is not a cloud key file ({exc}); ask the cloud operator for a new one") from exc


def init(directory: Path, hub_id: str, cloud_key_file: Path) -> Identity:
    """Create a new identity (refuses to overwrite one)."""
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", hub_id):
        raise IdentityError(f"hub id {hub_id!r} must be 1-64 characters of A-Z a-z 0-9 . _ -")
    if (directory / "hub_ed25519.key").exists():
        raise IdentityError(f"{directory} already holds a hub identity; use another directory or `rotate-key`")
    recipient, signing = _read_cloud_keys(cloud_key_file)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    _write_secret(directory / "hub_ed25519.key", ed25519.Ed25519PrivateKey.generate().private_bytes_raw())
    _write_secret(directory / "data.key", AESGCM.generate_key(bit_length=256))
    write_cloud_keys(directory / "cloud.json", recipient, signing)
    _write_secret(directory / "hub.json", json.dumps({"hub_id": hub_id}).encode())
    return load(directory)


def _read_secret(path: Path, size: int) -> bytes:
    try:
        mode = path.stat().st_mode & 0o777
        data = path.read_bytes()
    except FileNotFoundError:
        raise IdentityError(f"{path} is missing: run `mchub edge init` (or restore the identity backup)") from None
    if mode & 0o077:
        raise IdentityError(f"{path} is readable by others (mode {mode:o}): run `chmod 600 {path}`")
    if len(data) != size:
        raise IdentityError(f"{path} holds {len(data)} bytes, expected {size}: restore it from the backup")
    return data


def load(directory: Path) -> Identity:
    """Read the identity directory; raises IdentityError naming the file and the fix."""
    if is_enrolled(directory):  # made by `mchub edge enroll` (provisioning), not `mchub edge init`
        return load_enrolled(directory)
    if not (directory / "hub.json").exists() and not (directory / "hub_ed25519.key").exists():
        raise IdentityError(
            f"此网关尚未注册（{directory} 中没有网关身份）/ this hub is not enrolled: no hub identity in {directory}\n"
            "  fix: 向中心管理员要一个注册令牌（mchub provision token create --site SITE），然后在本机运行 / get an "
            "enrollment token from the central admin (mchub provision token create --site SITE), then run here:\n"
            "    mchub edge enroll --cloud URL --token TOKEN --config hub.toml\n"
            "  不用令牌时 / without provisioning (docs/edge.md):\n"
            "    mchub edge init --hub-id ID --cloud-key cloud.json --config hub.toml")
    try:
        hub_id = json.loads((directory / "hub.json").read_text(encoding="utf-8"))["hub_id"]
    except (OSError, ValueError, KeyError) as exc:
        raise IdentityError(f"{directory / 'hub.json'} is missing or unreadable ({exc}): "
                            "run `mchub edge init`") from exc
    signer = ed25519.Ed25519PrivateKey.from_private_bytes(_read_secret(directory / "hub_ed25519.key", 32))
    prev_path = directory / "hub_ed25519.prev"
    previous = (ed25519.Ed25519PrivateKey.from_private_bytes(_read_secret(prev_path, 32))
                if prev_path.exists() else None)
    recipient, signing = _read_cloud_keys(directory / "cloud.json")
    return Identity(directory, hub_id, signer, previous, _read_secret(directory / "data.key", 32), recipient, signing)


def rotate(directory: Path) -> Identity:
    """New signing key; the old one is kept as ``hub_ed25519.prev``. Returns the new identity."""
    current = directory / "hub_ed25519.key"
    _write_secret(directory / "hub_ed25519.prev", _read_secret(current, 32))
    _write_secret(current, ed25519.Ed25519PrivateKey.generate().private_bytes_raw())
    return load(directory)


# -- an enrolled hub (``mchub edge enroll``, edge/enrolled.py): the provisioning state directory is its identity

def is_enrolled(directory: Path) -> bool:
    """True when ``directory`` holds an enrollment (not an ``mchub edge init`` identity)."""
    return (directory / "identity.json").exists() and (directory / hubside.HUB_PEM).exists()


def enrollment_state(directory: Path) -> hubside.HubState:
    """The verified enrollment state; IdentityError naming the fix when it is damaged."""
    try:
        return hubside.load_state(directory)
    except (ProvisioningError, OSError) as exc:
        raise IdentityError(f"{directory}: {exc}") from exc


def load_enrolled(directory: Path) -> Identity:
    """The daemon's identity from an enrollment."""
    st = enrollment_state(directory)
    data = (directory / DATA_KEY).read_bytes() if (directory / DATA_KEY).exists() else b""
    if len(data) != 32:
        raise IdentityError(f"{directory / DATA_KEY} is missing or damaged: restore it from the backup (it "
                            "decrypts the subjects in hub.db), or run `mchub edge enroll` again on a new hub")
    if st.expired:
        log.error("the hub certificate has expired: readings are kept, but the cloud refuses them until the hub "
                  "is enrolled again (`mchub edge enroll` with a new token)")
    return Identity(directory, st.identity.hub_id, st.key, None, data, st.cloud.recipients[0], st.cloud.signing_key)
