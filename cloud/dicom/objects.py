"""The object directory: where received DICOM files live, durably and exactly once.

Layout under the configured root::

    <root>/studies/<StudyUID>/<SeriesUID>/<SOPInstanceUID>.dcm   stored instances
    <root>/rejected/<time>-<sha256[:16]>.bin (+ .txt reason)     refused input, kept for inspection
    <root>/tmp/                                                  files being written

UIDs are checked against the UID grammar (:mod:`cloud.dicom.uids`) before they touch a
path, and the final path is verified to lie under the root, so no input can escape it.

Writes are atomic: the bytes go to a temporary file in ``tmp/`` (same file system),
are fsynced, then hard-linked to their final name — ``link`` fails if the name exists,
so two concurrent writers of one instance cannot overwrite each other — and the
directory is fsynced. A crash leaves either no file or the complete file (plus, at
worst, a stray temporary file that :meth:`ObjectStore.sweep_temp` removes later).

Duplicates (same SOP Instance UID): the same instance — identical bytes, or the same
decoded content in another transfer syntax (:func:`cloud.dicom.sameness.same_instance`)
— is a success (the sender resent, e.g. after a lost response) and reports
``created=False``; different content is refused with
:class:`~cloud.dicom.errors.DuplicateConflict` and the new bytes are kept under
``rejected/``. The stored original is never replaced: correcting an instance needs a
new SOP Instance UID, as PS3.3 requires for changed content.

At rest (issue 17 §9): with a :class:`Sealer` bound (:meth:`ObjectStore.bind_sealer`; the
cloud binds :class:`cloud.records.crypto_at_rest.AtRest`, the ``at-rest.key`` of the key
directory) every stored instance and every kept refusal is written as
``MCHUBDCM1`` + AES-256-GCM (nonce, ciphertext, tag), bound to its SOP Instance UID (or
to ``rejected``). :meth:`ObjectStore.read` opens both that and plaintext files written
before encryption existed (they stay readable; nothing is rewritten in place).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import struct
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cloud.dicom.errors import DuplicateConflict, InvalidUid, StoreError
from cloud.dicom.sameness import same_instance
from cloud.dicom.uids import check_uid

log = logging.getLogger(__name__)

#: the first bytes of an encrypted object file (a Part 10 file starts with a 128-byte preamble)
SEALED_MAGIC = b"MCHUBDCM1"
#: a large refused body sealed piece by piece: magic, then (4-byte big-endian length, sealed piece)...
SEALED_PIECES_MAGIC = b"MCHUBDCMP"
PIECE = 1 << 20


class Sealer(Protocol):
    """What the store needs of the at-rest cipher (:class:`cloud.records.crypto_at_rest.AtRest`)."""

    def seal_bytes(self, value: bytes, column: str) -> bytes: ...

    def open_bytes(self, sealed: bytes, column: str) -> bytes: ...


@dataclass(frozen=True, slots=True)
class StoredObject:
    """Where an instance lives, its SHA-256, and whether this call created it."""

    path: Path
    sha256: str
    size: int
    created: bool


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ObjectStore:
    """A directory of DICOM Part 10 files addressed by Study/Series/SOP Instance UID."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        sealer: Sealer | None = None,
        same_content: Callable[[bytes, bytes], bool] = same_instance,
    ) -> None:
        self.sealer = sealer
        self.same_content = same_content
        self.root = Path(root).resolve()
        self.studies = self.root / "studies"
        self.rejected = self.root / "rejected"
        self.tmp = self.root / "tmp"
        for d in (self.studies, self.rejected, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        self.sweep_temp()

    def bind_sealer(self, sealer: Sealer) -> None:
        """Encrypt everything written from now on (reads open both forms)."""
        self.sealer = sealer

    def _seal(self, data: bytes, binding: str) -> bytes:
        if self.sealer is None:
            return data
        return SEALED_MAGIC + self.sealer.seal_bytes(data, f"dicom.object:{binding}")

    def open_bytes(self, raw: bytes, binding: str) -> bytes:
        """The plaintext of file content ``raw`` (sealed for ``binding``, or a plaintext file)."""
        if not raw.startswith((SEALED_MAGIC, SEALED_PIECES_MAGIC)):
            return raw
        if self.sealer is None:
            raise StoreError("the object is encrypted but no at-rest key is bound")
        if raw.startswith(SEALED_MAGIC):
            return self.sealer.open_bytes(raw[len(SEALED_MAGIC) :], f"dicom.object:{binding}")
        out, pos, index, last = bytearray(), len(SEALED_PIECES_MAGIC), 0, False
        while pos < len(raw) and not last:
            if pos + 4 > len(raw):
                raise StoreError("a sealed file is truncated")
            (size,) = struct.unpack_from(">I", raw, pos)
            piece = raw[pos + 4 : pos + 4 + size]
            pos += 4 + size
            last = pos >= len(raw)
            out += self.sealer.open_bytes(piece, f"dicom.object:{binding}:{index}:{'last' if last else 'more'}")
            index += 1
        return bytes(out)

    def _seal_file(self, source: Path, binding: str) -> Path:
        """Seal ``source`` piece by piece into a new temporary file (bounded memory); returns it."""
        assert self.sealer is not None
        tmp = self.temp_path()
        try:
            with open(source, "rb") as src, open(tmp, "xb") as out:
                out.write(SEALED_PIECES_MAGIC)
                piece, index = src.read(PIECE), 0
                while True:
                    following = src.read(PIECE)
                    tail = "more" if following else "last"
                    sealed = self.sealer.seal_bytes(piece, f"dicom.object:{binding}:{index}:{tail}")
                    out.write(struct.pack(">I", len(sealed)) + sealed)
                    if not following:
                        break
                    piece, index = following, index + 1
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    def read(self, path: Path) -> bytes:
        """The Part 10 bytes of a stored instance (decrypted; plaintext files read as they are)."""
        return self.open_bytes(path.read_bytes(), path.stem)

    def read_rejected(self, path: Path) -> bytes:
        """The bytes of a kept refusal (decrypted)."""
        return self.open_bytes(path.read_bytes(), "rejected")

    def sweep_temp(self, max_age_s: float = 3600.0) -> int:
        """Delete temporary files left by a crashed writer; returns how many.

        Only files older than ``max_age_s`` go, because other workers may share the
        directory and be writing right now.
        """
        removed = 0
        cutoff = time.time() - max_age_s
        for part in self.tmp.glob("*.part"):
            try:
                if part.stat().st_mtime < cutoff:
                    part.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        if removed:
            log.warning("removed %d stale temporary file(s) from %s", removed, self.tmp)
        return removed

    def path_for(self, study_uid: str, series_uid: str, sop_instance_uid: str) -> Path:
        """The final path of an instance; raises :class:`InvalidUid` for anything but a UID."""
        parts = (
            check_uid(study_uid, "StudyInstanceUID"),
            check_uid(series_uid, "SeriesInstanceUID"),
            check_uid(sop_instance_uid, "SOPInstanceUID") + ".dcm",
        )
        path = self.studies.joinpath(*parts)
        if not path.resolve().is_relative_to(self.studies):
            raise InvalidUid("the instance path would leave the object directory")
        return path

    def _write_temp(self, data: bytes) -> Path:
        tmp = self.tmp / f"{uuid.uuid4().hex}.part"
        try:
            with open(tmp, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    def put(self, study_uid: str, series_uid: str, sop_instance_uid: str, data: bytes) -> StoredObject:
        """Store ``data`` durably under the instance's path (see the module docstring for duplicates)."""
        final = self.path_for(study_uid, series_uid, sop_instance_uid)
        digest = hashlib.sha256(data).hexdigest()
        tmp: Path | None = None
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._write_temp(self._seal(data, sop_instance_uid))
            try:
                os.link(tmp, final)
            except FileExistsError:
                return self._existing(final, data, digest)
            _fsync_dir(final.parent)
        except OSError as exc:
            raise StoreError(f"could not store the instance in {self.studies}: {exc.strerror or exc}") from exc
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        return StoredObject(final, digest, len(data), created=True)

    def _existing(self, final: Path, data: bytes, digest: str) -> StoredObject:
        old = self.read(final)
        if old == data:
            return StoredObject(final, digest, len(data), created=False)
        if self.same_content(old, data):
            log.info("SOP instance %s resent with the same content in other bytes (transfer syntax): duplicate",
                     final.stem)
            return StoredObject(final, hashlib.sha256(old).hexdigest(), len(old), created=False)
        kept = self.quarantine(data, f"duplicate SOP instance with different content; stored original: {final}")
        raise DuplicateConflict(
            f"SOP instance {final.stem} is already stored with different content "
            f"(sha256 {hashlib.sha256(old).hexdigest()[:16]}, received {digest[:16]}); "
            f"received bytes kept as {kept.name}"
        )

    def quarantine(self, data: bytes, reason: str) -> Path:
        """Keep refused input for inspection under ``rejected/`` with a ``.txt`` reason beside it.

        Never raises: a failure to keep the evidence is logged, not allowed to mask the
        original refusal.
        """
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.rejected / f"{stamp}-{hashlib.sha256(data).hexdigest()[:16]}.bin"
        try:
            tmp = self._write_temp(self._seal(data, "rejected"))
            os.replace(tmp, path)
            path.with_suffix(".txt").write_text(reason + "\n", encoding="utf-8")
        except OSError as exc:
            log.error("could not keep refused DICOM input in %s: %s", self.rejected, exc)
        return path

    def temp_path(self) -> Path:
        """A new temporary file name in ``tmp/`` (e.g. for a request body streamed to disk)."""
        return self.tmp / f"{uuid.uuid4().hex}.part"

    def quarantine_file(self, source: Path, reason: str) -> Path:
        """Keep a refused file that is already on disk (a streamed request body) under ``rejected/``.

        Blocking (run it in a thread). Without a sealer the file is moved, not copied; with
        one it is sealed 1 MiB at a time into a new file (memory stays bounded) and the
        source removed. :meth:`read_rejected` opens both. Never raises.
        """
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.rejected / f"{stamp}-{uuid.uuid4().hex[:16]}.bin"
        try:
            if self.sealer is not None:
                sealed = self._seal_file(source, "rejected")
                source.unlink(missing_ok=True)
                source = sealed
            os.replace(source, path)
            path.with_suffix(".txt").write_text(reason + "\n", encoding="utf-8")
        except OSError as exc:
            log.error("could not keep refused DICOM input in %s: %s", self.rejected, exc)
        return path

    def instances(self) -> list[Path]:
        """Every stored instance file, sorted (for tests and re-indexing tools)."""
        return sorted(self.studies.rglob("*.dcm"))
