"""PACS simulator: sends DICOM instances to mchub the two ways a hospital PACS does.

* :func:`stow` — DICOMweb STOW-RS (PS3.18 §10.5) over HTTP with aiohttp. The
  multipart/related body is built here from RFC 2046 (:func:`multipart_body`), not by the
  cloud's code, so a parser bug cannot hide behind its twin.
* :func:`cstore` — DIMSE C-STORE (PS3.4 Annex B) as an SCU with pynetdicom. A file path
  is sent byte for byte as stored (pynetdicom's chunked mode); a Dataset is encoded by
  pynetdicom in its own transfer syntax.

Synthetic instances with Chinese names, national IDs and BI-RADS reports come from
:mod:`firmware_sim.pacs_data`. This module never imports ``cloud``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from pydicom.dataset import Dataset
from pynetdicom import AE, _config
from pynetdicom.dsutils import split_dataset
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]


class PacsSimError(Exception):
    """The simulated PACS could not talk to its peer (refused association, HTTP failure)."""


def multipart_body(files: Sequence[bytes], boundary: str) -> bytes:
    """``multipart/related`` body with one ``application/dicom`` part per file (RFC 2046 §5.1.1)."""
    out = bytearray()
    for f in files:
        out += b"--" + boundary.encode("ascii") + b"\r\nContent-Type: application/dicom\r\n\r\n"
        out += f + b"\r\n"
    out += b"--" + boundary.encode("ascii") + b"--\r\n"
    return bytes(out)


@dataclass(frozen=True)
class StowAnswer:
    """The server's answer: HTTP status and the decoded JSON body (``{}`` if none)."""

    status: int
    body: dict[str, Any]

    def _items(self, tag: str) -> list[dict[str, Any]]:
        seq = self.body.get(tag, {})
        return list(seq.get("Value", [])) if isinstance(seq, dict) else []

    @property
    def stored(self) -> list[str]:
        """SOP Instance UIDs listed in Referenced SOP Sequence (0008,1199)."""
        return [i["00081155"].get("Value", [""])[0] for i in self._items("00081199")]

    @property
    def failed(self) -> list[tuple[str, int, str]]:
        """(SOP Instance UID, Failure Reason, Error Comment) from Failed SOP Sequence (0008,1198)."""
        out = []
        for i in self._items("00081198"):
            uid = i.get("00081155", {}).get("Value", [""])[0]
            reason = i.get("00081197", {}).get("Value", [0])[0]
            comment = i.get("00000902", {}).get("Value", [""])[0]
            out.append((uid, reason, comment))
        return out


async def stow(
    base_url: str,
    files: Sequence[bytes],
    *,
    study: str | None = None,
    boundary: str | None = None,
    content_type: str | None = None,
    session: aiohttp.ClientSession | None = None,
    credentials: tuple[str, str] | None = None,
) -> StowAnswer:
    """POST ``files`` (Part 10 bytes) to ``{base_url}/studies[/{study}]`` and return the answer.

    ``credentials`` is the sender's (name, token), sent as HTTP Basic (RFC 7617).
    """
    boundary = boundary or f"mchub-sim-{uuid.uuid4().hex}"
    url = base_url.rstrip("/") + "/studies" + (f"/{study}" if study else "")
    headers = {
        "Content-Type": content_type or f'multipart/related; type="application/dicom"; boundary={boundary}',
        "Accept": "application/dicom+json",
    }
    if credentials is not None:
        name, token = credentials
        headers["Authorization"] = "Basic " + base64.b64encode(f"{name}:{token}".encode()).decode("ascii")
    own = session is None
    session = session or aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))
    try:
        async with session.post(url, data=multipart_body(files, boundary), headers=headers) as resp:
            text = await resp.text()
            try:
                body = json.loads(text) if text.strip() else {}
            except ValueError:
                body = {"text": text}
            return StowAnswer(resp.status, body if isinstance(body, dict) else {"json": body})
    except aiohttp.ClientError as exc:
        raise PacsSimError(f"STOW-RS to {url} failed: {exc}") from exc
    finally:
        if own:
            await session.close()


#: StoreStatus.status when the SCP refused the SOP class at association time, so nothing was sent
NOT_SENT = -1


@dataclass(frozen=True)
class StoreStatus:
    """One C-STORE response: status (0 = success, :data:`NOT_SENT`) and the SCP's Error Comment."""

    status: int
    comment: str = ""


def _context(item: Path | Dataset) -> tuple[str, str]:
    """(SOP class, transfer syntax) the item needs a presentation context for."""
    if isinstance(item, Dataset):
        return str(item.SOPClassUID), str(item.file_meta.TransferSyntaxUID)
    meta, _ = split_dataset(item)
    return str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID)


def _associate(ae: AE, host: str, port: int, called_aet: str) -> Any:
    assoc = ae.associate(host, port, ae_title=called_aet)
    if not assoc.is_established:
        prim = getattr(assoc.acceptor, "primitive", None)
        if assoc.is_rejected and prim is not None:
            raise PacsSimError(f"association rejected: {prim.result_str}, {prim.source_str}: {prim.reason_str}")
        raise PacsSimError(f"no association with {called_aet} at {host}:{port}")
    return assoc


def cstore(
    items: Sequence[Path | Dataset],
    host: str,
    port: int,
    *,
    calling_aet: str = "SIMPACS",
    called_aet: str = "MCHUB",
    timeout: float = 30.0,
) -> list[StoreStatus]:
    """Send every item over one association (blocking; use ``asyncio.to_thread`` from a loop).

    Raises :class:`PacsSimError` if the association is rejected or aborted.
    """
    _config.STORE_SEND_CHUNKED_DATASET = True  # send files exactly as stored on disk
    ae = AE(ae_title=calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    contexts = sorted({_context(i) for i in items})
    if len(contexts) > 127:
        raise PacsSimError(f"{len(contexts)} SOP class/transfer syntax pairs need more than one association")
    for sop_class, syntax in contexts:  # one context per pair: the SCP accepts one syntax per context
        ae.add_requested_context(sop_class, [syntax])
    ae.add_requested_context(Verification)
    assoc = _associate(ae, host, port, called_aet)
    statuses: list[StoreStatus] = []
    try:
        for item in items:
            target = os.fspath(item) if isinstance(item, Path) else item
            try:
                rsp = assoc.send_c_store(target)
            except ValueError as exc:  # the SCP accepted no presentation context for this SOP class
                statuses.append(StoreStatus(NOT_SENT, f"not sent: {exc}"))
                continue
            if "Status" not in rsp:
                raise PacsSimError("no C-STORE response (association aborted or timed out)")
            statuses.append(StoreStatus(int(rsp.Status), str(rsp.get("ErrorComment", ""))))
    finally:
        assoc.release()
    return statuses


def echo(host: str, port: int, *, calling_aet: str = "SIMPACS", called_aet: str = "MCHUB") -> int:
    """C-ECHO; returns the status (0 = success). Raises :class:`PacsSimError` if refused."""
    ae = AE(ae_title=calling_aet)
    ae.add_requested_context(Verification)
    assoc = _associate(ae, host, port, called_aet)
    try:
        rsp = assoc.send_c_echo()
        return int(rsp.Status) if "Status" in rsp else -1
    finally:
        assoc.release()


async def cstore_async(items: Sequence[Path | Dataset], host: str, port: int, **kw: Any) -> list[StoreStatus]:
    """:func:`cstore` in a worker thread, so the caller's event loop keeps running."""
    return await asyncio.to_thread(cstore, items, host, port, **kw)
