"""The uploader: ``mch.upload`` outbox messages -> the MCH platform (docs/mch.md).

One message names one record version (``case_id``, ``version``; idempotency key
``mch.upload/<case>/<version>``, the platform's ``Idempotency-Key`` is
``<type>:<case>:<version>``). :func:`deliverer` builds the delivery function:

* the record is mapped by the platform profile and sent with :class:`PlatformClient`
  (signed; client-side rate limit ``[mch] rate_per_s``);
* ``accepted`` or ``duplicate`` -> record ``accepted`` (a resend after a crash between the
  platform's answer and our commit is answered ``duplicate``: the platform holds each
  case version once);
* 429, 5xx, timeouts, connection errors -> retried by the outbox with exponential
  backoff and jitter, up to ``[outbox] max_attempts``;
* field errors and other refusals -> the platform's words are stored on the record
  (``platform_error``) and the message becomes a dead letter at once. Replay it after the
  platform side is fixed (``mchub cloud outbox replay ID``), or correct the case
  (``mchub cloud mch correct``): the corrected content is a new version with its own upload;
* a version that a newer one replaced before it was sent is skipped (``superseded``), as is
  one the platform answers 409 (it already holds a newer version).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cloud import outbox
from cloud.config import CloudConfig
from cloud.db.engine import Database
from cloud.errors import CloudError
from cloud.mch.client import PermanentUpload, PlatformClient, RetryableUpload
from cloud.mch.errors import MchError
from cloud.mch.store import UPLOAD_TOPIC, dumps
from protocol.ids import now_ms
from protocol.mch.profile import Profile, ProfileError
from protocol.mch.records import case_from_json

log = logging.getLogger("mchub.cloud.mch.uploader")


def read_secret(cfg: CloudConfig) -> bytes:
    """The platform app secret from ``[mch] secret_file``; MchError names the file, key and fix."""
    path = Path(cfg.mch.secret_file)
    try:
        secret = path.read_bytes().strip()
    except OSError as exc:
        raise MchError(f"{cfg.path}: [mch] secret_file: cannot read {path}: {exc.strerror}.\n  Fix: put the app "
                       "secret the platform issued in that file (one line, chmod 600), or set platform_url = \"\" "
                       "to keep records queued") from exc
    if not secret:
        raise MchError(f"{cfg.path}: [mch] secret_file: {path} is empty.\n  Fix: write the platform's app secret "
                       "into it")
    return secret


def client_for(cfg: CloudConfig) -> PlatformClient:
    """The platform client of a configuration."""
    m = cfg.mch
    return PlatformClient(m.platform_url, app_key=m.app_key, secret=read_secret(cfg), algorithm=m.algorithm,
                          timeout_s=m.timeout_s, rate_per_s=m.rate_per_s)


async def _mark(db: Database, case_id: str, version: int, status: str, error: dict[str, Any] | None = None) -> None:
    now = now_ms()
    async with db.transaction() as tx:
        await tx.execute("UPDATE mch_records SET status = $1, platform_error = $2, uploaded_ms = $3 "
                         "WHERE case_id = $4 AND version = $5", status, dumps(error) if error else None,
                         now if status == "accepted" else None, case_id, version)
        if status in ("accepted", "refused"):
            await tx.execute("UPDATE mch_cases SET state = $1, updated_ms = $2 WHERE case_id = $3 AND version = $4",
                             "uploaded" if status == "accepted" else "refused", now, case_id, version)


def deliverer(db: Database, client: PlatformClient, profile: Profile) -> outbox.Deliver:
    """The delivery function of the ``mch.upload`` topic."""

    async def deliver(m: outbox.Message) -> None:
        case_id, version = str(m.payload["case_id"]), int(m.payload["version"])
        async with db.transaction() as tx:
            rec = await tx.fetchrow("SELECT payload, status FROM mch_records WHERE case_id = $1 AND version = $2",
                                    case_id, version)
        if rec is None:
            raise outbox.DeliveryError(f"record {case_id} v{version} does not exist", permanent=True)
        if rec["status"] in ("superseded", "accepted"):
            return  # replaced before it went out, or already delivered
        case = case_from_json(rec["payload"])
        kind = str(type(case).__struct_config__.tag)
        try:
            record = profile.to_platform(case)
        except ProfileError as exc:
            await _mark(db, case_id, version, "refused", {"reason": str(exc)})
            raise outbox.DeliveryError(f"profile: {exc}", permanent=True) from exc
        try:
            answer = await client.upload(kind, record, case_id=case_id, version=version)
        except RetryableUpload as exc:
            raise outbox.DeliveryError(exc.reason) from exc
        except PermanentUpload as exc:
            if exc.status == 409:
                await _mark(db, case_id, version, "superseded", {"status": 409, "reason": exc.reason})
                return
            await _mark(db, case_id, version, "refused",
                        {"status": exc.status, "reason": exc.reason, "errors": exc.field_errors})
            raise outbox.DeliveryError(exc.reason, permanent=True) from exc
        await _mark(db, case_id, version, "accepted")
        log.info("mch: %s v%d %s by the platform", case_id, version, answer)

    return deliver


async def run(db: Database, cfg: CloudConfig, profile: Profile, stop: asyncio.Event, *, idle_s: float = 1.0) -> None:
    """Upload until ``stop``; a database outage is logged and the loop starts again."""
    client = client_for(cfg)
    try:
        while not stop.is_set():
            try:
                await outbox.run_dispatcher(db, UPLOAD_TOPIC, deliverer(db, client, profile), cfg.outbox, stop,
                                            idle_s=idle_s, batch=5, lease_ms=int(cfg.mch.lease_s * 1000))
            except CloudError as exc:
                log.warning("mch uploader: %s (retrying)", exc)
                await asyncio.sleep(idle_s)
    finally:
        await client.close()


async def drain(db: Database, cfg: CloudConfig, profile: Profile, say: Callable[[str], None] = print) -> int:
    """Upload what is due now (``mchub cloud mch upload``), one line per message to ``say``; returns the count."""
    client = client_for(cfg)
    deliver, tried = deliverer(db, client, profile), 0
    try:
        while messages := await outbox.claim(db, UPLOAD_TOPIC, limit=5, lease_ms=int(cfg.mch.lease_s * 1000)):
            for m in messages:
                tried += 1
                try:
                    await deliver(m)
                except outbox.DeliveryError as exc:
                    status = await outbox.fail(db, m.id, exc.reason, cfg.outbox, permanent=exc.permanent)
                    say(f"{m.idempotency_key}: {status}: {exc.reason}")
                else:
                    await outbox.complete(db, m.id)
                    say(f"{m.idempotency_key}: delivered")
    finally:
        await client.close()
    return tried
