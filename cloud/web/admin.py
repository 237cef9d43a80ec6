"""The admin console (role ``admin``; the audit log also for ``auditor``). Sign-in is password + TOTP.

    GET  /ui/admin                         sites, enrollment tokens, hubs (status, cert expiry)
    POST /ui/admin/sites                   add a site
    POST /ui/admin/tokens                  mint an enrollment token (its text is shown once)
    POST /ui/admin/hubs/{hub_id}/revoke    revoke a hub (reason required)
    POST /ui/admin/hubs/{hub_id}/rotate    ask a hub to rotate its key
    GET  /ui/admin/devices                 devices per hub and station
    POST /ui/admin/devices                 register a device (hub, station, kind, address)
    POST /ui/admin/devices/{hub}/{dev}/remove  unregister it
    GET  /ui/admin/users                   accounts and roles
    POST /ui/admin/users                   add an account (its TOTP secret is shown once)
    POST /ui/admin/users/{name}/roles      replace roles
    POST /ui/admin/users/{name}/active     disable / enable (disabling ends its sessions)
    GET  /ui/admin/audit                   the audit log, filtered
    GET  /ui/admin/dicom-senders           STOW-RS sender credentials (issue 16 §1)
    POST /ui/admin/dicom-senders           create one (its token is shown once)
    POST /ui/admin/dicom-senders/{name}/revoke  revoke it: refused from its next request

Every change is validated and audited by the service that owns it (:mod:`cloud.web.admin_ops`).
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from cloud import users
from cloud.errors import CloudError
from cloud.fleet.api import fleet_of
from cloud.web import admin_ops
from cloud.web.shell import ADMIN, AUDITOR, PREFIX, actor, db_of, guard, page
from protocol.ids import now_ms
from provisioning.admin import SITE_ID_PATTERN
from provisioning.errors import ProvisioningError

#: what a refused change raises: the message is shown to the admin as it is
Refused = (CloudError, ProvisioningError)

HOME = f"{PREFIX}/admin"


def _back(path: str, *, ok: str = "", error: str = "") -> Response:
    q = f"?ok={quote(ok[:200], safe='')}" if ok else f"?error={quote(error[:300], safe='')}" if error else ""
    return RedirectResponse(f"{path}{q}", 303)


def _flash(request: Request) -> dict[str, str]:
    return {"ok": request.query_params.get("ok", ""), "error": request.query_params.get("error", "")}


async def _overview(request: Request, extra: dict[str, object] | None = None, status_code: int = 200) -> Response:
    async with db_of(request).transaction() as tx:
        ctx = {"sites": await admin_ops.sites(tx), "hubs": await admin_ops.hubs(tx, now_ms()),
               "tokens": await admin_ops.tokens(tx), "now": now_ms(), "site_id_pattern": SITE_ID_PATTERN,
               **_flash(request), **(extra or {})}
    return page(request, "admin.html", ctx, nav="admin", status_code=status_code)


@guard(ADMIN)
async def overview(request: Request) -> Response:
    """GET /ui/admin."""
    return await _overview(request)


@guard(ADMIN)
async def add_site(request: Request) -> Response:
    """POST /ui/admin/sites: site_id, name."""
    form = await request.form()
    site_id = str(form.get("site_id", "")).strip()
    try:
        await admin_ops.add_site(fleet_of(request), site_id, str(form.get("name", "")).strip(), actor=actor(request))
    except Refused as exc:
        return _back(HOME, error=str(exc))
    return _back(HOME, ok=site_id)


@guard(ADMIN)
async def create_token(request: Request) -> Response:
    """POST /ui/admin/tokens: site_id. The token text is in this response only (no redirect, no-store)."""
    form = await request.form()
    try:
        token = await admin_ops.create_token(fleet_of(request), str(form.get("site_id", "")).strip(),
                                             actor=actor(request))
    except Refused as exc:
        return _back(HOME, error=str(exc))
    return await _overview(request, {"new_token": token})


@guard(ADMIN)
async def revoke(request: Request) -> Response:
    """POST /ui/admin/hubs/{hub_id}/revoke: reason."""
    form = await request.form()
    hub_id = request.path_params["hub_id"]
    try:
        await admin_ops.revoke_hub(fleet_of(request), hub_id, str(form.get("reason", "")), actor=actor(request))
    except Refused as exc:
        return _back(HOME, error=str(exc))
    return _back(HOME, ok=hub_id)


@guard(ADMIN)
async def rotate(request: Request) -> Response:
    """POST /ui/admin/hubs/{hub_id}/rotate."""
    hub_id = request.path_params["hub_id"]
    try:
        sent = await admin_ops.rotate_hub(fleet_of(request), hub_id, actor=actor(request))
    except Refused as exc:
        return _back(HOME, error=str(exc))
    return _back(HOME, ok=f"{hub_id} {'→ MQTT' if sent else '(at its next check-in)'}")


@guard(ADMIN)
async def devices(request: Request) -> Response:
    """GET /ui/admin/devices."""
    async with db_of(request).transaction() as tx:
        rows = await admin_ops.devices(tx)
        hubs = [h["hub_id"] for h in await admin_ops.hubs(tx, now_ms()) if h["status"] == "active"]
    return page(request, "devices.html", {"devices": rows, "hubs": hubs, **_flash(request)}, nav="admin")


@guard(ADMIN)
async def add_device(request: Request) -> Response:
    """POST /ui/admin/devices: hub_id, station, kind, address, label."""
    form = await request.form()
    back = f"{HOME}/devices"
    try:
        station = str(form.get("station", ""))
        if not station.isdigit():
            raise CloudError(f"station {station!r} must be a number (1, 2, ...)")
        device_id = await admin_ops.add_device(
            fleet_of(request), str(form.get("hub_id", "")), station=int(station), kind=str(form.get("kind", "")),
            address=str(form.get("address", "")).strip(), label=str(form.get("label", "")).strip(),
            actor=actor(request))
    except Refused as exc:
        return _back(back, error=str(exc))
    return _back(back, ok=device_id)


@guard(ADMIN)
async def remove_device(request: Request) -> Response:
    """POST /ui/admin/devices/{hub_id}/{device_id}/remove."""
    p = request.path_params
    try:
        await admin_ops.remove_device(fleet_of(request), p["hub_id"], p["device_id"], actor=actor(request))
    except Refused as exc:
        return _back(f"{HOME}/devices", error=str(exc))
    return _back(f"{HOME}/devices", ok=p["device_id"])


async def _users_page(request: Request, extra: dict[str, object] | None = None) -> Response:
    accounts = await users.list_users(db_of(request))
    return page(request, "users.html", {"users": accounts, "roles": users.ROLES, **_flash(request), **(extra or {})},
                nav="admin")


@guard(ADMIN)
async def user_list(request: Request) -> Response:
    """GET /ui/admin/users."""
    return await _users_page(request)


@guard(ADMIN)
async def add_user(request: Request) -> Response:
    """POST /ui/admin/users: username, display_name, password, roles. Shows the TOTP secret once."""
    form = await request.form()
    name = str(form.get("username", "")).strip()
    try:
        await users.create_user(db_of(request), name, str(form.get("password", "")),
                                roles=[str(r) for r in form.getlist("roles")], actor=actor(request),
                                display_name=str(form.get("display_name", "")).strip())
        secret, uri = await users.enable_totp(db_of(request), request.app.state.cloud.ingestor.at_rest, name,
                                              actor=actor(request))
    except Refused as exc:
        return _back(f"{HOME}/users", error=str(exc))
    return await _users_page(request, {"new_user": name, "totp_secret": secret, "totp_uri": uri})


@guard(ADMIN)
async def set_roles(request: Request) -> Response:
    """POST /ui/admin/users/{name}/roles: roles (repeated)."""
    form = await request.form()
    name = request.path_params["name"]
    try:
        await users.set_roles(db_of(request), name, [str(r) for r in form.getlist("roles")], actor=actor(request))
    except Refused as exc:
        return _back(f"{HOME}/users", error=str(exc))
    return _back(f"{HOME}/users", ok=name)


@guard(ADMIN)
async def set_active(request: Request) -> Response:
    """POST /ui/admin/users/{name}/active: active=1|0."""
    form = await request.form()
    name = request.path_params["name"]
    try:
        if name == request.scope["state"]["session"].user:
            raise CloudError("you cannot disable your own account")
        await users.set_active(db_of(request), name, str(form.get("active")) == "1", actor=actor(request))
    except Refused as exc:
        return _back(f"{HOME}/users", error=str(exc))
    return _back(f"{HOME}/users", ok=name)


async def _senders_page(request: Request, extra: dict[str, object] | None = None) -> Response:
    from cloud.integration.dicom_senders import list_senders

    rows = await list_senders(db_of(request))
    return page(request, "dicom_senders.html", {"senders": rows, **_flash(request), **(extra or {})}, nav="admin")


@guard(ADMIN)
async def dicom_senders(request: Request) -> Response:
    """GET /ui/admin/dicom-senders."""
    return await _senders_page(request)


@guard(ADMIN)
async def add_dicom_sender(request: Request) -> Response:
    """POST /ui/admin/dicom-senders: name, note. The token is in this response only (no redirect)."""
    from cloud.integration.dicom_senders import add_sender

    form = await request.form()
    try:
        sender, token = await add_sender(db_of(request), str(form.get("name", "")).strip(), actor=actor(request),
                                         note=str(form.get("note", "")).strip())
    except Refused as exc:
        return _back(f"{HOME}/dicom-senders", error=str(exc))
    return await _senders_page(request, {"new_sender": sender.name, "new_token": token})


@guard(ADMIN)
async def revoke_dicom_sender(request: Request) -> Response:
    """POST /ui/admin/dicom-senders/{name}/revoke."""
    from cloud.integration.dicom_senders import revoke_sender

    name = request.path_params["name"]
    try:
        await revoke_sender(db_of(request), name, actor=actor(request))
    except Refused as exc:
        return _back(f"{HOME}/dicom-senders", error=str(exc))
    return _back(f"{HOME}/dicom-senders", ok=name)


@guard(ADMIN, AUDITOR)
async def audit_viewer(request: Request) -> Response:
    """GET /ui/admin/audit?actor=&action=&hub=&before=."""
    p = request.query_params
    before = p.get("before", "")
    filters = {"actor": p.get("actor", "")[:64], "action": p.get("action", "")[:64], "hub_id": p.get("hub", "")[:64]}
    async with db_of(request).transaction() as tx:
        rows = await admin_ops.audit_log(tx, actor=filters["actor"], action=filters["action"],
                                         hub_id=filters["hub_id"], before_id=int(before) if before.isdigit() else None)
    return page(request, "audit.html", {"rows": rows, "filters": filters}, nav="audit")


def routes() -> list[Route]:
    """The admin console routes (inside the /ui mount)."""
    return [
        Route("/admin", overview),
        Route("/admin/sites", add_site, methods=["POST"]),
        Route("/admin/tokens", create_token, methods=["POST"]),
        Route("/admin/hubs/{hub_id}/revoke", revoke, methods=["POST"]),
        Route("/admin/hubs/{hub_id}/rotate", rotate, methods=["POST"]),
        Route("/admin/devices", devices),
        Route("/admin/devices", add_device, methods=["POST"]),
        Route("/admin/devices/{hub_id}/{device_id}/remove", remove_device, methods=["POST"]),
        Route("/admin/users", user_list),
        Route("/admin/users", add_user, methods=["POST"]),
        Route("/admin/users/{name}/roles", set_roles, methods=["POST"]),
        Route("/admin/users/{name}/active", set_active, methods=["POST"]),
        Route("/admin/audit", audit_viewer),
        Route("/admin/dicom-senders", dicom_senders),
        Route("/admin/dicom-senders", add_dicom_sender, methods=["POST"]),
        Route("/admin/dicom-senders/{name}/revoke", revoke_dicom_sender, methods=["POST"]),
    ]
