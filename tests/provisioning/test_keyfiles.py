"""Private key files: 0600, atomic, never silently overwritten, refused when others can read them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from provisioning.errors import ProvisioningError
from provisioning.keyfiles import load_private_key, save_private_key, write_private_file


def test_key_file_is_0600_and_loads_back(tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    save_private_key(tmp_path / "hub.key.pem", key)
    assert stat.S_IMODE((tmp_path / "hub.key.pem").stat().st_mode) == 0o600
    assert load_private_key(tmp_path / "hub.key.pem").public_key() == key.public_key()
    assert [p.name for p in tmp_path.iterdir()] == ["hub.key.pem"]  # no temp file left behind


def test_no_silent_overwrite(tmp_path: Path) -> None:
    write_private_file(tmp_path / "f", b"first")
    with pytest.raises(FileExistsError):
        write_private_file(tmp_path / "f", b"second")
    assert (tmp_path / "f").read_bytes() == b"first"
    write_private_file(tmp_path / "f", b"second", overwrite=True)
    assert (tmp_path / "f").read_bytes() == b"second"


def test_world_readable_key_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "hub.key.pem"
    save_private_key(path, ed25519.Ed25519PrivateKey.generate())
    os.chmod(path, 0o644)
    with pytest.raises(ProvisioningError, match=f"chmod 600 {path}"):
        load_private_key(path)


def test_missing_or_wrong_key_files(tmp_path: Path) -> None:
    with pytest.raises(ProvisioningError, match="cannot read"):
        load_private_key(tmp_path / "absent.pem")
    write_private_file(tmp_path / "junk.pem", b"not a key")
    with pytest.raises(ProvisioningError, match="not an unencrypted PEM"):
        load_private_key(tmp_path / "junk.pem")
