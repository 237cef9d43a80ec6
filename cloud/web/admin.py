"""The admin console (role ``admin``; the audit log also for ``auditor``). Sign-in is password + TOTP.

    GET  /ui/admin                         sites, enrollment tokens, hubs (status, cert expiry)
    POST /ui/admin/sites                   add a site
    POST /ui/admin/tokens                  mint an enrollment token (its text is shown once)
    POST /ui/admin/hubs/{hub_id}/revoke    revoke a hub (reason required)
    POST /ui/admin/hubs/{hub_id}/rotate    ask a hub to rotate its key
    GET  /ui/admin/devices                 inventory and what hubs report, merged, 50 a page by key
                                           (?after_hub=&after_device= / ?before_hub=&before_device=);
                                           ?remove_hub=&remove_device= asks to confirm a removal
    POST /ui/admin/stations/{hub}/{station}/rename  rename a station (unique on the hub, audited, pushed)
    POST /ui/admin/devices                 register a device (hub, station by name, kind, address)
    POST /ui/admin/devices/{hub}/{dev}/remove  unregister it (reason required, audited)
    GET  /ui/admin/users                   accounts and roles
    POST /ui/admin/users                   add an account; its one-time-code QR code is shown once
    POST /ui/admin/users/{name}/totp       a new one-time-code QR code for the account
    POST /ui/admin/users/{name}/totp/confirm  the first code from the app makes the new secret active
    POST /ui/admin/users/{name}/roles      replace roles
    POST /ui/admin/users/{name}/active     disable / enable (disabling ends its sessions)
    GET  /ui/admin/audit                   the audit log, filtered
    GET  /ui/admin/dicom-senders           STOW-RS sender credentials (issue 16 §1)
    POST /ui/admin/dicom-senders           create one (its token is shown once)
    POST /ui/admin/dicom-senders/{name}/revoke  revoke it: refused from its next request

Every change is validated and audited by the service that owns it (:mod:`cloud.web.admin_ops`).
A refusal is shown as the catalog text ``refused.<reason>`` with the service's own message
behind 详情 (:func:`_refusal`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from cloud.errors import CloudError
from cloud.fleet.api import fleet_of
from cloud.users import accounts as users
from cloud.users import totp_enrolment as user_totp
from cloud.web import admin_ops
from cloud.web.qr import qr_svg
from cloud.web.shell import ADMIN, AUDITOR, PREFIX, RENDER, actor, db_of, guard, page
from protocol.ids import now_ms
from provisioning.admin import SITE_ID_PATTERN
from provisioning.errors import ProvisioningError

#: what a refused change raises: the message is shown to the admin as it is
Refused = (CloudError, ProvisioningError)

HOME = f"{PREFIX}/admin"


def _back(path: str, *, ok: str = "", error: tuple[str, str] = ("", "")) -> Response:
    """Redirect to ``path`` with a flash: ``ok`` names what changed; ``error`` is (text, detail) of a refusal."""
    text, detail = error
    sep = "&" if "?" in path else "?"
    q = (f"{sep}ok={quote(ok[:200], safe='')}" if ok else
         f"{sep}error={quote(text[:300], safe='')}&detail={quote(detail[:300], safe='')}" if text else "")
    return RedirectResponse(f"{path}{q}", 303)


def _flash(request: Request) -> dict[str, str]:
    return {k: request.query_params.get(k, "") for k in ("ok", "error", "detail")}


def _refusal(request: Request, exc: Exception) -> tuple[str, str]:
    """The reader's-language text of a refused change (catalog ``refused.<reason>``, filled from the error's
    ``params`` when it has them) and the raw message."""
    reason = str(getattr(exc, "reason", "") or "")
    key = f"refused.{reason}" if f"refused.{reason}" in RENDER.catalog.messages["zh-CN"] else "refused.other"
    params = {k: str(v) for k, v in dict(getattr(exc, "params", {}) or {}).items()}
    return RENDER.catalog.t(key, RENDER.language(request), **params), str(exc)


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
        return _back(HOME, error=_refusal(request, exc))
    return _back(HOME, ok=site_id)


@guard(ADMIN)
async def create_token(request: Request) -> Response:
    """POST /ui/admin/tokens: site_id. The token text is in this response only (no redirect, no-store)."""
    form = await request.form()
    try:
        token = await admin_ops.create_token(fleet_of(request), str(form.get("site_id", "")).strip(),
                                             actor=actor(request))
    except Refused as exc:
        return _back(HOME, error=_refusal(request, exc))
    return await _overview(request, {"new_token": token})


@guard(ADMIN)
async def revoke(request: Request) -> Response:
    """POST /ui/admin/hubs/{hub_id}/revoke: reason."""
    form = await request.form()
    hub_id = request.path_params["hub_id"]
    try:
        await admin_ops.revoke_hub(fleet_of(request), hub_id, str(form.get("reason", "")), actor=actor(request))
    except Refused as exc:
        return _back(HOME, error=_refusal(request, exc))
    return _back(HOME, ok=hub_id)


@guard(ADMIN)
async def rotate(request: Request) -> Response:
    """POST /ui/admin/hubs/{hub_id}/rotate."""
    hub_id = request.path_params["hub_id"]
    try:
        sent = await admin_ops.rotate_hub(fleet_of(request), hub_id, actor=actor(request))
    except Refused as exc:
        return _back(HOME, error=_refusal(request, exc))
    lang = RENDER.language(request)
    return _back(HOME, ok=f"{hub_id} {RENDER.catalog.t('admin.rotate_sent' if sent else 'admin.rotate_later', lang)}")


def _key(q: Any, side: str) -> admin_ops.Key | None:
    """A page key from ``?{side}_hub=&{side}_device=`` (None when absent)."""
    hub, dev = q.get(f"{side}_hub"), q.get(f"{side}_device")
    return (hub[:64], dev[:128]) if hub and dev else None


@guard(ADMIN)
async def devices(request: Request) -> Response:
    """GET /ui/admin/devices[?after_hub=&after_device= | ?before_hub=&before_device=][&remove_hub=H&remove_device=D]:
    one page (50) of the merged list by key; with a device named, its removal form (reason required) is shown
    first."""
    q = request.query_params
    async with db_of(request).transaction() as tx:
        found = await admin_ops.devices(tx, after=_key(q, "after"), before=_key(q, "before"))
        hubs = [h["hub_id"] for h in await admin_ops.hubs(tx, now_ms()) if h["status"] == "active"]
        stations = await admin_ops.stations(tx)
        removing = await admin_ops.device(tx, q["remove_hub"], q["remove_device"]) \
            if q.get("remove_hub") and q.get("remove_device") else None
    paging = {k: q[k] for k in ("after_hub", "after_device", "before_hub", "before_device") if q.get(k)}
    here = f"{HOME}/devices" + (f"?{urlencode(paging)}" if paging else "")  # a rename comes back to this page
    return page(request, "devices.html", {"devices": found.rows, "found": found, "hubs": hubs, "stations": stations,
                                          "counts": found.counts, "removing": removing, "here": here,
                                          **_flash(request)}, nav="devices")


@guard(ADMIN)
async def rename_station(request: Request) -> Response:
    """POST /ui/admin/stations/{hub_id}/{station_id}/rename: name (unique on the hub; audited, pushed to the hub)."""
    p = request.path_params
    form = await request.form()
    back = str(form.get("back", ""))
    back = back if back.startswith(f"{HOME}/devices") and not any(c in back for c in "\r\n\\#") \
        and "//" not in back and "ok=" not in back and "error=" not in back else f"{HOME}/devices"
    try:
        await admin_ops.rename_station(fleet_of(request), p["hub_id"], p["station_id"], str(form.get("name", "")),
                                       actor=actor(request), now=now_ms())
    except Refused as exc:
        return _back(back, error=_refusal(request, exc))
    return _back(back, ok=" ".join(str(form.get("name", "")).split()))


@guard(ADMIN)
async def add_device(request: Request) -> Response:
    """POST /ui/admin/devices: hub_id, station (its name), kind, address, label."""
    form = await request.form()
    back = f"{HOME}/devices"
    hub_id = str(form.get("hub_id", ""))
    try:
        station = await admin_ops.station_number(db_of(request), hub_id, str(form.get("station", "")),
                                                 actor=actor(request), now=now_ms())
        device_id = await admin_ops.add_device(
            fleet_of(request), hub_id, station=station, kind=str(form.get("kind", "")),
            address=str(form.get("address", "")).strip(), label=str(form.get("label", "")).strip(),
            actor=actor(request))
    except Refused as exc:
        return _back(back, error=_refusal(request, exc))
    return _back(back, ok=device_id)


@guard(ADMIN)
async def remove_device(request: Request) -> Response:
    """POST /ui/admin/devices/{hub_id}/{device_id}/remove: reason (required; the audit log keeps it)."""
    p = request.path_params
    form = await request.form()
    try:
        await admin_ops.remove_device(fleet_of(request), p["hub_id"], p["device_id"],
                                      reason=str(form.get("reason", "")), actor=actor(request))
    except Refused as exc:
        return _back(f"{HOME}/devices", error=_refusal(request, exc))
    return _back(f"{HOME}/devices", ok=p["device_id"])


async def _users_page(request: Request, extra: dict[str, object] | None = None) -> Response:
    accounts = await users.list_users(db_of(request))
    return page(request, "users.html", {"users": accounts, "roles": users.ROLES, **_flash(request), **(extra or {})},
                nav="users")


async def _enrolment(request: Request, name: str, secret: str, uri: str, error: tuple[str, str] = ("", "")) -> Response:
    """The users page with the account's one-time-code QR code (no-store: the secret is in this answer only)."""
    title = RENDER.catalog.t("users.qr_title", RENDER.language(request), user=name)
    return await _users_page(request, {"new_user": name, "totp_secret": secret, "totp_uri": uri,
                                       "totp_qr": qr_svg(uri, title=title), "error": error[0], "detail": error[1]})


@guard(ADMIN)
async def user_list(request: Request) -> Response:
    """GET /ui/admin/users."""
    return await _users_page(request)


@guard(ADMIN)
async def add_user(request: Request) -> Response:
    """POST /ui/admin/users: username, display_name, password, roles. Shows the one-time-code QR code once."""
    form = await request.form()
    name = str(form.get("username", "")).strip()
    try:
        await users.create_user(db_of(request), name, str(form.get("password", "")),
                                roles=[str(r) for r in form.getlist("roles")], actor=actor(request),
                                display_name=str(form.get("display_name", "")).strip())
        secret, uri = await user_totp.start_totp(db_of(request), request.app.state.cloud.ingestor.at_rest, name,
                                             actor=actor(request))
    except Refused as exc:
        return _back(f"{HOME}/users", error=_refusal(request, exc))
    return await _enrolment(request, name, secret, uri)


@guard(ADMIN)
async def new_totp(request: Request) -> Response:
    """POST /ui/admin/users/{name}/totp: a new QR code; the old secret works until the new one is confirmed."""
    name = request.path_params["name"]
    try:
        secret, uri = await user_totp.start_totp(db_of(request), request.app.state.cloud.ingestor.at_rest, name,
                                             actor=actor(request))
    except Refused as exc:
        return _back(f"{HOME}/users", error=_refusal(request, exc))
    return await _enrolment(request, name, secret, uri)


@guard(ADMIN)
async def confirm_totp(request: Request) -> Response:
    """POST /ui/admin/users/{name}/totp/confirm: code. A wrong code shows the same QR code again."""
    name = request.path_params["name"]
    form = await request.form()
    at_rest = request.app.state.cloud.ingestor.at_rest
    try:
        await user_totp.confirm_totp(db_of(request), at_rest, name, str(form.get("code", "")), actor=actor(request))
    except Refused as exc:
        wrong_code = isinstance(exc, users.UserError) and exc.reason == "bad_code"
        waiting = await user_totp.pending_totp(db_of(request), at_rest, name) if wrong_code else None
        if waiting is None:
            return _back(f"{HOME}/users", error=_refusal(request, exc))
        return await _enrolment(request, name, *waiting, error=_refusal(request, exc))
    return _back(f"{HOME}/users", ok=name)


@guard(ADMIN)
async def set_roles(request: Request) -> Response:
    """POST /ui/admin/users/{name}/roles: roles (repeated)."""
    form = await request.form()
    name = request.path_params["name"]
    try:
        await users.set_roles(db_of(request), name, [str(r) for r in form.getlist("roles")], actor=actor(request))
    except Refused as exc:
        return _back(f"{HOME}/users", error=_refusal(request, exc))
    return _back(f"{HOME}/users", ok=name)


@guard(ADMIN)
async def set_active(request: Request) -> Response:
    """POST /ui/admin/users/{name}/active: active=1|0."""
    form = await request.form()
    name = request.path_params["name"]
    try:
        if name == request.scope["state"]["session"].user:
            raise users.UserError("you cannot disable your own account", "own_account")
        await users.set_active(db_of(request), name, str(form.get("active")) == "1", actor=actor(request))
    except Refused as exc:
        return _back(f"{HOME}/users", error=_refusal(request, exc))
    return _back(f"{HOME}/users", ok=name)


async def _senders_page(request: Request, extra: dict[str, object] | None = None) -> Response:
    from cloud.integration.dicom_senders import list_senders

    rows = await list_senders(db_of(request))
    return page(request, "dicom_senders.html", {"senders": rows, **_flash(request), **(extra or {})},
                nav="dicom_senders")


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
        return _back(f"{HOME}/dicom-senders", error=_refusal(request, exc))
    return await _senders_page(request, {"new_sender": sender.name, "new_token": token})


@guard(ADMIN)
async def revoke_dicom_sender(request: Request) -> Response:
    """POST /ui/admin/dicom-senders/{name}/revoke."""
    from cloud.integration.dicom_senders import revoke_sender

    name = request.path_params["name"]
    try:
        await revoke_sender(db_of(request), name, actor=actor(request))
    except Refused as exc:
        return _back(f"{HOME}/dicom-senders", error=_refusal(request, exc))
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
        Route("/admin/stations/{hub_id}/{station_id}/rename", rename_station, methods=["POST"]),
        Route("/admin/users", user_list),
        Route("/admin/users", add_user, methods=["POST"]),
        Route("/admin/users/{name}/roles", set_roles, methods=["POST"]),
        Route("/admin/users/{name}/totp", new_totp, methods=["POST"]),
        Route("/admin/users/{name}/totp/confirm", confirm_totp, methods=["POST"]),
        Route("/admin/users/{name}/active", set_active, methods=["POST"]),
        Route("/admin/audit", audit_viewer),
        Route("/admin/dicom-senders", dicom_senders),
        Route("/admin/dicom-senders", add_dicom_sender, methods=["POST"]),
        Route("/admin/dicom-senders/{name}/revoke", revoke_dicom_sender, methods=["POST"]),
    ]
