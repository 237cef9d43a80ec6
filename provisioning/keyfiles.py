"""Private files on disk: written atomically with mode 0600, refused when readable by others.

Used for the CA key and, on the hub, for the hub's Ed25519 key, its certificate and the
enrollment state. A hub key is stored unencrypted (the hub must restart unattended); the
file mode is its protection, so :func:`load_private_key` refuses a file that group or
others can read and says how to fix it.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from provisioning.errors import ProvisioningError


def write_private_file(path: Path, data: bytes, *, overwrite: bool = False) -> None:
    """Write ``data`` to ``path`` with mode 0600, all or nothing (temp file, fsync, rename).

    Without ``overwrite`` an existing file is never replaced (``FileExistsError``).
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if path exists: no silent overwrite
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def check_private_mode(path: Path) -> None:
    """Refuse a secret file that group or others may read."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ProvisioningError(
            f"{path} is readable by other users (mode {mode:o}); it holds a private key. Fix: chmod 600 {path}"
        )


def save_private_key(path: Path, key: ed25519.Ed25519PrivateKey, *, overwrite: bool = False) -> None:
    """Store an Ed25519 private key as unencrypted PKCS#8 PEM, mode 0600."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_private_file(path, pem, overwrite=overwrite)


def load_private_key(path: Path) -> ed25519.Ed25519PrivateKey:
    """Load a key written by :func:`save_private_key` (after checking the file mode)."""
    try:
        check_private_mode(path)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise ProvisioningError(f"cannot read the hub key {path}: {exc.strerror}") from exc
    except (ValueError, TypeError) as exc:
        raise ProvisioningError(f"{path} is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ProvisioningError(f"{path} holds a {type(key).__name__}, the hub key must be Ed25519")
    return key
