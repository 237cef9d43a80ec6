"""The key directory (0600 files, no overwrite) and AES-256-GCM at rest with a separate blind-index key."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cloud.errors import KeyStoreError
from cloud.intake.keystore import init_keys, load_keys
from cloud.records.crypto_at_rest import AtRest, AtRestError
from protocol.keys import RecipientPrivate, SuiteId

NID = "11010519491231002X"


def test_init_creates_private_files_and_refuses_to_overwrite(tmp_path: Path) -> None:
    keys = init_keys(tmp_path / "keys")
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "keys").iterdir()}
    assert set(modes.values()) == {0o600} and len(modes) == 5
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert set(keys.published) == set(SuiteId)
    with pytest.raises(KeyStoreError, match="refusing to overwrite"):
        init_keys(tmp_path / "keys")


def test_load_refuses_group_readable_keys_and_keeps_rotated_recipients(tmp_path: Path) -> None:
    init_keys(tmp_path)
    old = RecipientPrivate.generate(SuiteId.X25519_AES256GCM)
    (tmp_path / "hpke-x25519.2024.key").write_bytes(old.secret)
    os.chmod(tmp_path / "hpke-x25519.2024.key", 0o600)
    keys = load_keys(tmp_path)
    assert old.public().key_id in keys.recipients and len(keys.recipients) == 3
    assert keys.published[SuiteId.X25519_AES256GCM].key_id != old.public().key_id
    os.chmod(tmp_path / "signing.key", 0o640)
    with pytest.raises(KeyStoreError, match="chmod 600"):
        load_keys(tmp_path)


def test_sealed_values_open_only_in_their_column_and_the_blind_index_matches() -> None:
    at_rest = AtRest(b"k" * 32, b"b" * 32)
    sealed = at_rest.seal(NID, "subjects.national_id")
    assert NID.encode() not in sealed and sealed != at_rest.seal(NID, "subjects.national_id")
    assert at_rest.open(sealed, "subjects.national_id") == NID
    with pytest.raises(AtRestError):
        at_rest.open(sealed, "subjects.name")
    assert at_rest.blind_index(NID.lower()) == at_rest.blind_index(NID)
    assert AtRest(b"k" * 32, b"c" * 32).blind_index(NID) != at_rest.blind_index(NID)
    with pytest.raises(AtRestError):
        AtRest(b"k" * 32, b"k" * 32)
