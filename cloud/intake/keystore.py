"""The cloud key directory (``[keys] dir``), created by ``mchub cloud init``.

Files (raw bytes, mode 0600, directory 0700):

=========================  ====================================================
``hpke-x25519.key``        HPKE recipient key, suite 1 (32 bytes)
``hpke-mlkem768x25519.key`` HPKE recipient key, suite 2 (96 bytes: ML-KEM seed ‖ X25519)
``signing.key``            Ed25519 key that signs acks and commands (32 bytes)
``at-rest.key``            AES-256-GCM key for national IDs and names (32 bytes)
``blind-index.key``        HMAC key of the national-ID blind index (32 bytes, separate)
=========================  ====================================================

Older recipient keys may be kept as ``hpke-x25519.<anything>.key`` during a rotation;
every recipient key found is accepted, the newest (unsuffixed) one is published.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from cloud.errors import KeyStoreError
from protocol.keys import RecipientPrivate, RecipientPublic, SuiteId, ed25519_raw

_SUITE_FILES = {SuiteId.X25519_AES256GCM: "hpke-x25519", SuiteId.MLKEM768X25519_AES256GCM: "hpke-mlkem768x25519"}
_SECRET_LEN = {SuiteId.X25519_AES256GCM: 32, SuiteId.MLKEM768X25519_AES256GCM: 96}


@dataclass(frozen=True)
class CloudKeys:
    """Everything secret the cloud holds, loaded once per worker."""

    recipients: dict[bytes, RecipientPrivate]  #: key id -> private key (all suites, incl. rotated)
    published: dict[SuiteId, RecipientPublic]  #: the current public key per suite
    signing: ed25519.Ed25519PrivateKey
    at_rest: bytes
    blind_index: bytes

    def public_document(self) -> dict[str, object]:
        """What hubs need to know about the cloud (served at GET /api/v1/keys)."""
        return {
            "recipients": {s.label: {"key_id": p.key_id.hex(), "public_key": p.raw.hex()}
                           for s, p in self.published.items()},
            "signing_public_key": ed25519_raw(self.signing.public_key()).hex(),
        }


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def init_keys(directory: Path) -> CloudKeys:
    """Create a new key directory; refuses to overwrite existing keys."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    existing = sorted(p.name for p in directory.glob("*.key"))
    if existing:
        raise KeyStoreError(f"{directory} already holds keys ({', '.join(existing)}); refusing to overwrite.\n"
                            "  Fix: use another directory, or move the old keys away deliberately")
    for suite, name in _SUITE_FILES.items():
        _write(directory / f"{name}.key", RecipientPrivate.generate(suite).secret)
    _write(directory / "signing.key", ed25519.Ed25519PrivateKey.generate().private_bytes_raw())
    _write(directory / "at-rest.key", os.urandom(32))
    _write(directory / "blind-index.key", os.urandom(32))
    return load_keys(directory)


def _read(path: Path, length: int) -> bytes:
    try:
        st = path.stat()
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise KeyStoreError(f"{path}: missing.\n  Fix: run `mchub cloud init` or restore the key backup") from exc
    except OSError as exc:
        raise KeyStoreError(f"{path}: cannot read: {exc.strerror}") from exc
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyStoreError(f"{path}: readable by other users (mode {stat.S_IMODE(st.st_mode):o}).\n"
                            f"  Fix: chmod 600 {path}")
    if len(data) != length:
        raise KeyStoreError(f"{path}: holds {len(data)} bytes, expected {length}; the file is damaged")
    return data


def load_keys(directory: Path) -> CloudKeys:
    """Load and check the key directory."""
    if not directory.is_dir():
        raise KeyStoreError(f"{directory}: key directory not found.\n  Fix: run `mchub cloud init --config ...`")
    recipients: dict[bytes, RecipientPrivate] = {}
    published: dict[SuiteId, RecipientPublic] = {}
    for suite, name in _SUITE_FILES.items():
        current = RecipientPrivate(suite, _read(directory / f"{name}.key", _SECRET_LEN[suite]))
        published[suite] = current.public()
        for extra in sorted(directory.glob(f"{name}.*.key")):
            old = RecipientPrivate(suite, _read(extra, _SECRET_LEN[suite]))
            recipients[old.public().key_id] = old
        recipients[current.public().key_id] = current
    signing = ed25519.Ed25519PrivateKey.from_private_bytes(_read(directory / "signing.key", 32))
    return CloudKeys(recipients, published, signing, _read(directory / "at-rest.key", 32),
                     _read(directory / "blind-index.key", 32))
