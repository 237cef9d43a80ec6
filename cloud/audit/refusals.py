"""Every refused HTTP request is audited, in bounded space (ASGI middleware).

:class:`RefusalAudit` wraps the cloud application outermost and counts each answer whose
status is a refusal (:data:`cloud.audit.REFUSAL_STATUSES`: 400, 401, 403, 404, 405, 411,
413, 429, 431, 503) in the worker's :class:`cloud.audit.RefusalTally`, keyed by client
address (the real client behind a trusted proxy, ``[server] forwarded_allow_ips``),
route and reason. The reason is the code a handler or :class:`webui.body_limit.BodyLimit`
left in ``scope["state"]["refusal"]``, else ``http_<status>``; a refused batch's claimed hub
is ``scope["state"]["refusal_hub"]``. A handler that wrote its
own audit entry for the refusal (an authenticated caller) sets
``scope["state"]["refusal_audited"] = True`` and is not counted twice.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud.audit import REFUSAL_STATUSES, RefusalTally

UNKNOWN_ROUTE = "(no such route)"  #: the route of 404s no route matched, so a scanner's paths are one key


def route_of(scope: Scope) -> str:
    """The route template of a request (``/api/v1/admin/hubs/{hub}/revoke``), not its path:
    the caller chooses path parameters, so they would make unbounded keys."""
    path = str(scope["path"])
    for name, value in (scope.get("path_params") or {}).items():
        text = str(value)
        if text:
            path = path.replace(text, "{" + name + "}", 1)
    return path[:200]


class RefusalAudit:
    """ASGI middleware; see the module docstring."""

    def __init__(self, app: ASGIApp, tally: RefusalTally) -> None:
        self.app, self.tally = app, tally

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in REFUSAL_STATUSES:
                state = scope.get("state", {})
                if not state.get("refusal_audited"):
                    status = int(message["status"])
                    client = scope.get("client")
                    matched = "endpoint" in scope  # Starlette sets it once a route matched
                    route = route_of(scope) if status != 404 or matched else UNKNOWN_ROUTE
                    self.tally.note(client[0] if client else "?", route,
                                    str(state.get("refusal") or f"http_{status}"), status,
                                    hub_id=state.get("refusal_hub"))
            await send(message)

        await self.app(scope, receive, watched)
