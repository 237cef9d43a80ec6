"""Every request body limited before it is read (ASGI middleware, cloud and hub).

:class:`BodyLimit` sits outside the application and, per route:

* answers 413 at once when ``Content-Length`` is over the route's cap, before a byte
  of the body is read (the connection is closed, so the rest is never received);
* answers 411 when the route needs a declared length (``length_required``) and the
  request has none (a chunked upload);
* counts the bytes the application actually receives and stops a body (chunked, or
  longer than declared) at the cap: the application sees :class:`BodyTooLarge` from
  ``receive()`` and the client gets 413 if no answer has started.

Routes are matched by path prefix (the longest wins); anything else gets ``default``.
The refusal's reason code is left in ``scope["state"]["refusal"]`` for the audit tally.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """A request body went past its route's cap while being read."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"内容过大 / request body over {limit} bytes")
        self.limit = limit


@dataclass(frozen=True)
class Cap:
    """The body cap of the routes under ``prefix``."""

    prefix: str
    limit: int
    length_required: bool = False  #: refuse a body without Content-Length (411)


def _refusal(status: int, reason: str, message: str) -> JSONResponse:
    return JSONResponse({"reason": reason, "message": message}, status, headers={"Connection": "close"})


class BodyLimit:
    """ASGI middleware; see the module docstring."""

    def __init__(self, app: ASGIApp, caps: Sequence[Cap] = (), default: int = 1 << 20,
                 on_refusal: Callable[[str, str], None] | None = None) -> None:
        """``on_refusal(path, reason)`` is called for every refusal (e.g. to count it)."""
        self.app, self.default, self.on_refusal = app, default, on_refusal
        self.caps = sorted(caps, key=lambda c: len(c.prefix), reverse=True)

    def cap_for(self, path: str) -> Cap:
        """The cap that applies to ``path``."""
        for cap in self.caps:
            if path.startswith(cap.prefix):
                return cap
        return Cap("", self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.cap_for(scope["path"])
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        if declared is not None and not declared.isdigit():
            await self._refuse(scope, receive, send, 400, "bad_length", "请求无效 / Content-Length is not a number")
            return
        if declared is not None and int(declared) > cap.limit:
            await self._refuse(scope, receive, send, 413, "too_large", f"内容过大 / request body of "
                               f"{int(declared)} bytes exceeds the limit of {cap.limit} bytes")
            return
        if cap.length_required and declared is None and chunked:
            await self._refuse(scope, receive, send, 411, "length_required",
                               "需要 Content-Length / this route needs a Content-Length (no chunked uploads)")
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap.limit:
                    scope.setdefault("state", {})["refusal"] = "too_large"
                    if self.on_refusal is not None:
                        self.on_refusal(scope["path"], "too_large")
                    raise BodyTooLarge(cap.limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge as exc:  # raised outside the app's exception handling (e.g. a middleware)
            if not started:
                await self._refuse(scope, receive, send, 413, "too_large", exc.detail)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, status: int, reason: str,
                      message: str) -> None:
        scope.setdefault("state", {})["refusal"] = reason
        if self.on_refusal is not None:
            self.on_refusal(scope["path"], reason)
        await _refusal(status, reason, message)(scope, receive, send)
