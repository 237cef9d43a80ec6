"""HTTP client for an MCH platform: signed requests, rate limit, classified outcomes.

``upload()`` sends one case record (already mapped by the platform profile) and returns
``"accepted"`` or ``"duplicate"``; every failure is classified so the outbox worker knows
what to do:

* :class:`RetryableUpload` — 429, 5xx, timeouts, connection errors: retry with backoff
  (``retry_after`` given when the platform said so);
* :class:`PermanentUpload` — 4xx with a reason (field errors from validation, 409 stale
  version, 401 credentials): dead-letter with the platform's own words, replay after a fix.

Idempotence: the record carries its case id and version and the request an
``Idempotency-Key`` of ``type:case_id:version``; a resend is answered "duplicate".
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from protocol.mch.signing import Method, sign


class UploadError(Exception):
    """An upload did not succeed; ``reason`` is what a person needs to read."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


class RetryableUpload(UploadError):
    """Try again later (``retry_after`` seconds when the platform named it)."""

    def __init__(self, reason: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason, status)
        self.retry_after = retry_after


class PermanentUpload(UploadError):
    """Will not succeed as sent: dead-letter with the reason and field errors."""

    def __init__(self, reason: str, status: int | None = None, field_errors: list[dict[str, str]] | None = None):
        super().__init__(reason, status)
        self.field_errors = field_errors or []


@dataclass
class TokenBucket:
    """Client-side rate limit: at most ``rate`` requests per second, bursts of ``rate``."""

    rate: float
    tokens: float = 0.0
    at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.rate

    async def take(self) -> None:
        """Wait for a token."""
        while True:
            now = time.monotonic()
            self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
            self.at = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await asyncio.sleep((1 - self.tokens) / self.rate)


class PlatformClient:
    """One MCH platform endpoint."""

    def __init__(self, base_url: str, *, app_key: str, secret: bytes, algorithm: Method = "HMAC-SHA256",
                 timeout_s: float = 10.0, rate_per_s: float = 10.0) -> None:
        self.base_url, self.app_key, self.secret = base_url.rstrip("/"), app_key, secret
        self.algorithm, self.timeout = algorithm, aiohttp.ClientTimeout(total=timeout_s)
        self.bucket = TokenBucket(rate_per_s)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()

    async def upload(self, kind: str, record: dict[str, Any], *, case_id: str, version: int) -> str:
        """POST one record; ``"accepted"`` or ``"duplicate"``, else an UploadError subclass."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        path = f"/api/v1/cases/{kind}"
        body = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
        await self.bucket.take()
        headers = sign(app_key=self.app_key, secret=self.secret, method="POST", path=path, body=body,
                       timestamp_ms=int(time.time() * 1000), algorithm=self.algorithm)
        headers |= {"Content-Type": "application/json; charset=utf-8",
                    "Idempotency-Key": f"{kind}:{case_id}:{version}"}
        try:
            async with self._session.post(self.base_url + path, data=body, headers=headers) as response:
                status, text = response.status, await response.text()
                retry_after = response.headers.get("Retry-After")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise RetryableUpload(f"platform unreachable or too slow: {exc or type(exc).__name__}") from exc
        return _classify(status, text, retry_after)


def _classify(status: int, text: str, retry_after: str | None) -> str:
    try:
        answer = json.loads(text) if text else {}
    except ValueError:
        answer = {"message": text[:200]}
    if not isinstance(answer, dict):
        answer = {"message": str(answer)[:200]}
    if status == 200 and answer.get("status") in ("accepted", "duplicate"):
        return str(answer["status"])
    message = str(answer.get("message") or answer.get("code") or f"HTTP {status}")
    if status == 429 or status >= 500:
        wait = float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else None
        raise RetryableUpload(f"platform answered {status}: {message}", status, wait)
    errors = answer.get("errors") if isinstance(answer.get("errors"), list) else []
    if errors:
        message = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in errors if isinstance(e, dict))
    raise PermanentUpload(f"platform refused ({status}): {message}", status, [e for e in errors if isinstance(e, dict)])
