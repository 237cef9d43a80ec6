"""HTTP routes of docs/admin-api.md: admin login and fleet operations, hub enrollment and rotation.

* ``/api/v1/admin/*`` — bearer session from ``POST /api/v1/admin/login`` (password + TOTP,
  :mod:`cloud.users`); every route checks its permission (:func:`cloud.users.require`).
* ``/api/v1/enroll``, ``/api/v1/rotate``, ``/api/v1/hub/config`` — hub requests (token,
  key possession, or a signed request).

Every refusal is ``{"reason", "message"}`` with the status of the error raised
(:class:`provisioning.errors.ProvisioningError` carries both). Logic lives in
:class:`cloud.fleet.service.Fleet`; this module only authenticates, decodes and encodes.
"""

from __future__ import annotations

import functools
import logging
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cloud.errors import CloudError, DatabaseUnavailable
from cloud.fleet.service import Fleet
from cloud.records.crypto_at_rest import AtRest
from cloud.users import accounts as users
from cloud.users import sessions as user_sessions
from protocol.ids import now_ms
from provisioning.enrollment import EnrollRequest
from provisioning.errors import AuthError, ProvisioningError
from provisioning.rotation import RotateRequest
from provisioning.stores import TokenRecord

if TYPE_CHECKING:
    from cloud.web.store import DbLoginThrottle

log = logging.getLogger("mchub.cloud.fleet.api")
Handler = Callable[[Request], Awaitable[Response]]
_DEVICE_FIELDS = {"station", "kind", "address", "transport", "port", "dialect", "options", "label", "device_id"}
MAX_BODY = 64 * 1024


class RateLimited(ProvisioningError):
    """Too many enrollment or login attempts from one address (per worker, sliding minute)."""

    reason = "rate_limited"
    status = 429


class _Limiter:
    """At most ``per_minute`` calls per source address within any 60 s (one worker's view)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.seen: dict[str, deque[float]] = {}

    def check(self, request: Request) -> None:
        now = time.monotonic()
        if len(self.seen) > 10_000:  # forget idle addresses
            self.seen = {k: v for k, v in self.seen.items() if v and now - v[-1] < 60}
        recent = self.seen.setdefault(request.client.host if request.client else "", deque())
        while recent and now - recent[0] >= 60:
            recent.popleft()
        if len(recent) >= self.per_minute:
            raise RateLimited(f"请稍后再试 / more than {self.per_minute} attempts a minute from this address; "
                              "wait a minute")
        recent.append(now)


_LIMITS: weakref.WeakKeyDictionary[Fleet, dict[str, _Limiter]] = weakref.WeakKeyDictionary()
LIMITS_PER_MINUTE = {"enroll": 10, "login": 20}


def _limit(request: Request, what: str) -> None:
    limiters = _LIMITS.setdefault(fleet_of(request), {k: _Limiter(n) for k, n in LIMITS_PER_MINUTE.items()})
    limiters[what].check(request)


def _json(value: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(value), status_code=status, media_type="application/json")


def _refuse(status: int, reason: str, message: str, **extra: Any) -> Response:
    return _json({"reason": reason, "message": message, **extra}, status)


def fleet_of(request: Request) -> Fleet:
    """The worker's :class:`Fleet` (set up at start by :func:`start`)."""
    fleet: Fleet = request.app.state.fleet
    return fleet


def start(state: Any) -> Fleet:
    """Build the worker's Fleet from its CloudState (called once in the app's lifespan)."""
    return Fleet.from_config(state.config, state.db, state.keys)


async def _body(request: Request) -> bytes:
    data = await request.body()
    if len(data) > MAX_BODY:
        raise ProvisioningError(f"request body over {MAX_BODY} bytes")
    return data


async def _doc(request: Request) -> dict[str, Any]:
    data = await _body(request)
    doc = msgspec.json.decode(data) if data else {}
    if not isinstance(doc, dict):
        raise ProvisioningError("the request body must be a JSON object")
    return doc


def _guard(permission: str | None, fn: Callable[[Request, users.User | None], Awaitable[Response]]) -> Handler:
    @functools.wraps(fn)
    async def handler(request: Request) -> Response:
        try:
            user = None
            if permission is not None:
                token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
                user = await user_sessions.session_user(fleet_of(request).db, token)
                if user is None:
                    raise AuthError("未登录或会话已过期 / not signed in or session expired; "
                                    "run `mchub provision login`")
                users.require(user, permission)
            return await fn(request, user)
        except ProvisioningError as exc:
            extra = {"locked_until_ms": exc.locked_until_ms} if hasattr(exc, "locked_until_ms") else {}
            return _refuse(exc.status, exc.reason, str(exc), **extra)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return _refuse(400, "bad_request", f"request body: {exc}")
        except (KeyError, TypeError, ValueError) as exc:
            return _refuse(400, "bad_request", f"request body lacks or mistypes {exc}")
        except users.UserError as exc:
            return _refuse(400, "invalid", str(exc))
        except DatabaseUnavailable as exc:
            return Response(msgspec.json.encode({"reason": "unavailable", "message": str(exc)}), 503,
                            headers={"Retry-After": "5"}, media_type="application/json")
        except CloudError as exc:
            log.exception("fleet request failed")
            return _refuse(500, "internal", f"the cloud could not complete this request: {type(exc).__name__}")

    return handler


def _actor(user: users.User | None) -> str:
    assert user is not None
    return user.username


# --- admin authentication --------------------------------------------------------------------


def _name_throttle(request: Request) -> DbLoginThrottle:
    """The per-name lock the sign-in page uses too (``user:NAME`` keys in ``web_login_locks``): a name,
    known or not, locks after ``[web] max_failures`` failures, so the lock tells nothing."""
    fleet = fleet_of(request)
    throttle = _THROTTLES.get(fleet)
    if throttle is None:
        from cloud.web.store import DbLoginThrottle  # here: cloud.web imports this module

        w = request.app.state.cloud.config.web
        throttle = _THROTTLES[fleet] = DbLoginThrottle(w.max_failures, lock_s=w.lock_s)
        throttle.bind(fleet.db)
    return throttle


_THROTTLES: weakref.WeakKeyDictionary[Fleet, DbLoginThrottle] = weakref.WeakKeyDictionary()


def _locked(wait_ms: int) -> Response:
    """The answer to a locked name: the same for an account and an unknown name."""
    return _refuse(429, "locked", users.LOGIN_MESSAGES["locked"], locked_until_ms=now_ms() + wait_ms)


async def login(request: Request, _: users.User | None) -> Response:
    """POST /api/v1/admin/login {"username", "password", "code"}.

    An unknown name and a known one get the same answers (status, body, lockout): the name's
    lock (shared with the sign-in page) is checked first, and the reason beyond "wrong username
    or password" / "locked" is given only after the right password (docs/admin-api.md).
    """
    _limit(request, "login")
    doc = await _doc(request)
    fleet = fleet_of(request)
    state = request.app.state.cloud
    name = str(doc["username"])
    throttle, key = _name_throttle(request), f"user:{name.lower()[:64]}"
    if (wait := await throttle.locked(key)) > 0:
        return _locked(int(wait * 1000))
    outcome = await users.attempt_login(fleet.db, AtRest(state.keys.at_rest, state.keys.blind_index),
                                        name, str(doc["password"]), str(doc["code"]),
                                        source=request.client.host if request.client else "",
                                        password_max_age_ms=state.config.web.password_max_age_days * 86_400_000)
    if outcome.user is None:
        await throttle.failure(key)
        # the attempt that locks says so, for an account and an unknown name alike
        wait_ms = max((outcome.locked_until_ms or 0) - now_ms() if outcome.reason == "locked" else 0,
                      int(await throttle.locked(key) * 1000))
        if wait_ms > 0:
            return _locked(wait_ms)
        return _refuse(401, "unauthorized", outcome.message)
    await throttle.success(key)
    token, expires = await user_sessions.create_session(fleet.db, outcome.user,
                                                source=request.client.host if request.client else "")
    return _json({"token": token, "expires_ms": expires, "username": outcome.user.username,
                  "role": outcome.user.role, "roles": sorted(outcome.user.roles)})


async def logout(request: Request, _: users.User | None) -> Response:
    """POST /api/v1/admin/logout."""
    token = request.headers.get("authorization", "").removeprefix("Bearer ")
    await user_sessions.end_session(fleet_of(request).db, token)
    return Response(status_code=204)


# --- admin routes ----------------------------------------------------------------------------


async def list_sites(request: Request, _: users.User | None) -> Response:
    """GET /api/v1/admin/sites: every site (site:read)."""
    return _json({"sites": await fleet_of(request).sites()})


async def add_site(request: Request, user: users.User | None) -> Response:
    """POST /api/v1/admin/sites {"site_id", "name"} (site:write)."""
    doc = await _doc(request)
    return _json(await fleet_of(request).add_site(_actor(user), str(doc["site_id"]), str(doc["name"])), 201)


async def list_tokens(request: Request, _: users.User | None) -> Response:
    """GET /api/v1/admin/tokens?site=S: enrollment tokens without digests (token:create)."""
    tokens = await fleet_of(request).tokens(request.query_params.get("site"))
    return _json({"tokens": [token_info(t) for t in tokens]})


async def create_token(request: Request, user: users.User | None) -> Response:
    """POST /api/v1/admin/tokens {"site_id", "expires_in_s", "hub_serial"}: the token, shown once."""
    doc = await _doc(request)
    serial = doc.get("hub_serial")
    created = await fleet_of(request).create_token(_actor(user), str(doc["site_id"]),
                                                   expires_in_s=int(doc.get("expires_in_s", 86_400)),
                                                   hub_serial=None if serial is None else str(serial))
    r = created.record
    return _json({"token": created.text, "token_id": r.token_id, "site_id": r.site_id, "expires_ms": r.expires_ms,
                  "hub_serial": r.hub_serial}, 201)


async def list_hubs(request: Request, _: users.User | None) -> Response:
    """GET /api/v1/admin/hubs: site, status, certificate expiry, last seen (hub:read)."""
    return _json({"hubs": await fleet_of(request).hubs()})


async def get_hub(request: Request, _: users.User | None) -> Response:
    """GET /api/v1/admin/hubs/{hub}: one hub (hub:read)."""
    return _json(await fleet_of(request).hub(request.path_params["hub"]))


async def revoke(request: Request, user: users.User | None) -> Response:
    """POST /api/v1/admin/hubs/{hub}/revoke {"reason"}: refused from its next request on (hub:revoke)."""
    doc = await _doc(request)
    return _json(await fleet_of(request).revoke(_actor(user), request.path_params["hub"], str(doc.get("reason", ""))))


async def rotate_key(request: Request, user: users.User | None) -> Response:
    """POST /api/v1/admin/hubs/{hub}/rotate: push rotate-key over MQTT (hub:revoke)."""
    pushed = await fleet_of(request).request_rotation(_actor(user), request.path_params["hub"])
    return _json({"pushed": pushed}, 202)


async def list_devices(request: Request, _: users.User | None) -> Response:
    """GET /api/v1/admin/hubs/{hub}/devices: devices and configuration version (device:read)."""
    devices, version = await fleet_of(request).devices(request.path_params["hub"])
    return _json({"devices": devices, "version": version})


async def add_device(request: Request, user: users.User | None) -> Response:
    """POST /api/v1/admin/hubs/{hub}/devices: register a device, push the configuration (device:write)."""
    doc = await _doc(request)
    unknown = set(doc) - _DEVICE_FIELDS
    if unknown:
        raise ProvisioningError(f"unknown device field(s): {', '.join(sorted(unknown))}")
    device, version, pushed = await fleet_of(request).add_device(_actor(user), request.path_params["hub"], **doc)
    return _json({"device": device, "version": version, "pushed": pushed}, 201)


async def remove_device(request: Request, user: users.User | None) -> Response:
    """DELETE /api/v1/admin/hubs/{hub}/devices/{dev}: unregister, push (device:write)."""
    version, pushed = await fleet_of(request).remove_device(_actor(user), request.path_params["hub"],
                                                            request.path_params["dev"])
    return _json({"version": version, "pushed": pushed})


async def audit(request: Request, _: users.User | None) -> Response:
    """GET /api/v1/admin/audit?target=T&limit=N: audit entries, oldest first (audit:read)."""
    entries = await fleet_of(request).audit(request.query_params.get("target"),
                                            int(request.query_params.get("limit", 200)))
    return _json({"entries": entries})


# --- hub routes ------------------------------------------------------------------------------


async def enroll(request: Request, _: users.User | None) -> Response:
    """POST /api/v1/enroll: token + CSR -> certificate, cloud keys, configuration, MQTT login."""
    _limit(request, "enroll")
    req = msgspec.json.decode(await _body(request), type=EnrollRequest)
    return _json(await fleet_of(request).enroll(req))


async def rotate(request: Request, _: users.User | None) -> Response:
    """POST /api/v1/rotate: new key signed by the current one -> new certificate (overlap)."""
    req = msgspec.json.decode(await _body(request), type=RotateRequest)
    return _json(await fleet_of(request).rotate(req))


async def hub_config(request: Request, _: users.User | None) -> Response:
    """GET /api/v1/hub/config (signed hub request): current configuration and CA bundle."""
    config, bundle = await fleet_of(request).hub_config(request.headers, method=request.method,
                                                        path=request.url.path, body=await _body(request))
    return _json({"config": config, "bundle": bundle})


def routes() -> list[Route]:
    """Every provisioning route (add to the cloud app's route list)."""
    a = "/api/v1/admin"
    return [
        Route(f"{a}/login", _guard(None, login), methods=["POST"]),
        Route(f"{a}/logout", _guard(None, logout), methods=["POST"]),
        Route(f"{a}/sites", _guard("site:read", list_sites), methods=["GET"]),
        Route(f"{a}/sites", _guard("site:write", add_site), methods=["POST"]),
        Route(f"{a}/tokens", _guard("token:create", list_tokens), methods=["GET"]),
        Route(f"{a}/tokens", _guard("token:create", create_token), methods=["POST"]),
        Route(f"{a}/hubs", _guard("hub:read", list_hubs), methods=["GET"]),
        Route(f"{a}/hubs/{{hub}}", _guard("hub:read", get_hub), methods=["GET"]),
        Route(f"{a}/hubs/{{hub}}/revoke", _guard("hub:revoke", revoke), methods=["POST"]),
        Route(f"{a}/hubs/{{hub}}/rotate", _guard("hub:revoke", rotate_key), methods=["POST"]),
        Route(f"{a}/hubs/{{hub}}/devices", _guard("device:read", list_devices), methods=["GET"]),
        Route(f"{a}/hubs/{{hub}}/devices", _guard("device:write", add_device), methods=["POST"]),
        Route(f"{a}/hubs/{{hub}}/devices/{{dev}}", _guard("device:write", remove_device), methods=["DELETE"]),
        Route(f"{a}/audit", _guard("audit:read", audit), methods=["GET"]),
        Route("/api/v1/enroll", _guard(None, enroll), methods=["POST"]),
        Route("/api/v1/rotate", _guard(None, rotate), methods=["POST"]),
        Route("/api/v1/hub/config", _guard(None, hub_config), methods=["GET"]),
    ]


def openapi_paths() -> dict[str, dict[str, Any]]:
    """The OpenAPI ``paths`` entries of :func:`routes` (summaries from the handlers' docstrings)."""
    refusal = {"description": "refused; JSON {reason, message}"}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes():
        summary = (route.endpoint.__doc__ or "").strip().splitlines()[0]
        for method in sorted((route.methods or set()) - {"HEAD"}):
            op: dict[str, Any] = {"summary": summary, "responses": {"200": {"description": "ok"}, "400": refusal,
                                                                       "401": refusal, "403": refusal}}
            if route.path.startswith("/api/v1/admin/") and not route.path.endswith("/login"):
                op["security"] = [{"bearer": []}]
            paths.setdefault(route.path, {})[method.lower()] = op
    return paths


def token_info(record: TokenRecord) -> dict[str, Any]:
    """A token as listed: everything but the digest."""
    return {"token_id": record.token_id, "site_id": record.site_id, "hub_serial": record.hub_serial,
            "created_ms": record.created_ms, "expires_ms": record.expires_ms, "created_by": record.created_by,
            "used_ms": record.used_ms, "used_by_hub": record.used_by_hub}
