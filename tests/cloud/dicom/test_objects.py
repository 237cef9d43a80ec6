"""The object directory: layout, atomic durable writes, duplicates, path traversal, faults."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from cloud.dicom.errors import DuplicateConflict, InvalidUid, StoreError
from cloud.dicom.objects import ObjectStore


def test_layout_and_created_flag(store: ObjectStore) -> None:
    stored = store.put("1.2.3", "1.2.3.4", "1.2.3.4.5", b"DATA")
    assert stored.path == store.root / "studies" / "1.2.3" / "1.2.3.4" / "1.2.3.4.5.dcm"
    assert stored.path.read_bytes() == b"DATA" and stored.created and stored.size == 4
    assert list(store.tmp.iterdir()) == []  # no temporary file left behind


def test_identical_resend_is_success_without_rewrite(store: ObjectStore) -> None:
    first = store.put("1.2", "1.2.3", "1.2.3.4", b"same")
    mtime = first.path.stat().st_mtime_ns
    again = store.put("1.2", "1.2.3", "1.2.3.4", b"same")
    assert not again.created and again.sha256 == first.sha256
    assert again.path.stat().st_mtime_ns == mtime


def test_different_content_is_a_conflict_and_kept(store: ObjectStore) -> None:
    store.put("1.2", "1.2.3", "1.2.3.4", b"original")
    with pytest.raises(DuplicateConflict, match="different content") as info:
        store.put("1.2", "1.2.3", "1.2.3.4", b"changed")
    assert info.value.failure_reason == 0x0111
    assert store.instances()[0].read_bytes() == b"original"  # never replaced
    kept = sorted(store.rejected.glob("*.bin"))
    assert [k.read_bytes() for k in kept] == [b"changed"]
    assert "duplicate" in kept[0].with_suffix(".txt").read_text()


@pytest.mark.parametrize(
    ("study", "series", "sop"),
    [
        ("..", "1.2", "1.2.3"),
        ("1.2", "../../..", "1.2.3"),
        ("1.2", "1.2", "../../../../tmp/x"),
        ("/etc", "1.2", "1.2.3"),
        ("1.2", "1.2", "1.2.3\x00.4"),  # a trailing NUL is UID padding; an embedded one is not
        ("1.2", "1.2", "1.2.3/4"),
        ("1.2", "1.2", "1.2.3\\..\\4"),
        ("", "1.2", "1.2.3"),
    ],
)
def test_path_traversal_is_refused(store: ObjectStore, study: str, series: str, sop: str) -> None:
    with pytest.raises(InvalidUid):
        store.put(study, series, sop, b"x")
    assert store.instances() == []
    assert not any(p.is_file() for p in store.root.parent.rglob("x"))


def test_full_disk_is_a_store_error_and_leaves_nothing(store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(StoreError, match="No space left") as info:
        store.put("1.2", "1.2.3", "1.2.3.4", b"data")
    assert info.value.failure_reason == 0xA700
    monkeypatch.undo()
    assert store.instances() == [] and list(store.tmp.iterdir()) == []
    assert store.put("1.2", "1.2.3", "1.2.3.4", b"data").created  # works again once space is back


def test_crash_before_link_leaves_no_partial_instance(store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process killed between writing the temp file and linking it: the instance is absent, not torn."""

    def crash(src: object, dst: object) -> None:
        raise KeyboardInterrupt  # stands in for the process dying here

    monkeypatch.setattr(os, "link", crash)
    with pytest.raises(KeyboardInterrupt):
        store.put("1.2", "1.2.3", "1.2.3.4", b"data")
    monkeypatch.undo()
    assert store.instances() == []
    # the sender never got a success, resends, and the instance is stored whole
    assert store.put("1.2", "1.2.3", "1.2.3.4", b"data").path.read_bytes() == b"data"


def test_store_reopens_existing_directory(tmp_path: Path) -> None:
    ObjectStore(tmp_path).put("1.2", "1.2.3", "1.2.3.4", b"a")
    assert len(ObjectStore(tmp_path).instances()) == 1


def test_stale_temp_files_from_a_crash_are_swept(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path)
    stale, fresh = store.tmp / "old.part", store.tmp / "new.part"
    stale.write_bytes(b"torn"), fresh.write_bytes(b"in flight")
    os.utime(stale, (0, 0))
    ObjectStore(tmp_path)  # a restart sweeps
    assert not stale.exists() and fresh.exists()


def test_concurrent_writers_of_one_instance_first_wins(tmp_path: Path) -> None:
    """Two cloud workers sharing the directory, each with its own ObjectStore, racing."""
    import threading

    stores = [ObjectStore(tmp_path), ObjectStore(tmp_path)]
    barrier = threading.Barrier(8)
    results: list[object] = [None] * 8

    def write(i: int) -> None:
        barrier.wait()
        try:
            results[i] = stores[i % 2].put("1.2", "1.2.3", "1.2.3.4", b"same" if i < 4 else f"other{i}".encode())
        except DuplicateConflict as exc:
            results[i] = exc

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    created = [r for r in results if not isinstance(r, DuplicateConflict) and r.created]
    assert len(created) == 1
    winner = stores[0].instances()[0].read_bytes()
    for i, r in enumerate(results):
        same = (b"same" if i < 4 else f"other{i}".encode()) == winner
        assert isinstance(r, DuplicateConflict) != same  # identical bytes succeed, others conflict
