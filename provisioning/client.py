"""HTTP client for docs/admin-api.md: the admin routes and the hub's enroll/rotate/config calls.

Standard library only (``urllib``): the admin CLI runs on any machine with the base
``mchub`` install, without the cloud or edge extras. Calls are blocking; an asyncio
caller (the hub daemon) wraps them in ``asyncio.to_thread``. Every failure is a
:class:`~provisioning.errors.ClientError` whose message is the server's own
``{"reason", "message"}`` when it sent one.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, TypeVar

import msgspec

from provisioning.errors import ClientError

T = TypeVar("T")
TIMEOUT_S = 15.0


class HttpClient:
    """JSON over HTTP(S) to one cloud base URL."""

    def __init__(self, base_url: str, *, bearer: str | None = None, cafile: str | None = None,
                 timeout: float = TIMEOUT_S) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ClientError(f"cloud URL {base_url!r} must look like https://cloud.example.org")
        self.base = base_url.rstrip("/")
        self.bearer = bearer
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=cafile) if parsed.scheme == "https" else None

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                raw_body: bytes | None = None) -> Any:
        """Send one request; return the decoded JSON answer (None for 204)."""
        data = raw_body if raw_body is not None else (None if body is None else msgspec.json.encode(body))
        req = urllib.request.Request(self.base + path, data=data, method=method)  # noqa: S310 - scheme checked
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.bearer:
            req.add_header("Authorization", f"Bearer {self.bearer}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self.context) as resp:  # noqa: S310 - idem
                payload = resp.read()
        except urllib.error.HTTPError as exc:
            raise _http_error(exc) from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ClientError(f"无法连接云端 / cannot reach {self.base}: {reason}") from exc
        if not payload:
            return None
        try:
            return json.loads(payload)
        except ValueError as exc:
            raise ClientError(f"{self.base}{path} answered something that is not JSON") from exc

    def typed(self, method: str, path: str, type_: type[T], body: Any = None,
              headers: dict[str, str] | None = None) -> T:
        """Send and decode the answer into a msgspec type."""
        answer = self.request(method, path, body, headers)
        try:
            return msgspec.convert(answer, type_)
        except msgspec.ValidationError as exc:
            raise ClientError(f"{self.base}{path} answered an unexpected document: {exc}") from exc


def _http_error(exc: urllib.error.HTTPError) -> ClientError:
    try:
        doc = json.loads(exc.read() or b"{}")
        reason, message = str(doc.get("reason", "")), str(doc.get("message", ""))
    except (ValueError, AttributeError):
        reason, message = "", ""
    text = message or f"HTTP {exc.code} {exc.reason}"
    return ClientError(text, http_status=exc.code, reason=reason)
