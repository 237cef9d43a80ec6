"""One-time-code (TOTP) enrolment of cloud users: a new secret, shown once as a QR code, that waits
for its first right code before it signs anyone in (console), or takes effect at once (CLI).

The secret is sealed at rest (:data:`cloud.users.TOTP_COLUMN`); every change is audited and
ends the user's open sessions, as any new second factor does.
"""

from __future__ import annotations

from cloud import audit
from cloud.db.engine import Database
from cloud.records.crypto_at_rest import AtRest
from cloud.users.accounts import TOTP_COLUMN, UserError, _bump, _need
from protocol.ids import now_ms as _now_ms
from provisioning import totp
from provisioning.errors import AuthError


async def enable_totp(db: Database, at_rest: AtRest, username: str, *, actor: str,
                      now_ms: int | None = None) -> tuple[str, str]:
    """Give the user a new TOTP secret (replacing any old one); returns ``(secret, otpauth URI)``.

    Show both once (the URI as a QR code); only the sealed secret is stored.
    """
    secret = totp.new_secret()
    now = _now_ms() if now_ms is None else now_ms
    async with db.transaction() as tx:
        row = await _need(tx, username, lock=True)
        await tx.execute("UPDATE users SET totp_secret_enc = $1, totp_pending_enc = NULL, last_totp_step = NULL "
                         "WHERE id = $2",
                         at_rest.seal(secret, TOTP_COLUMN), int(row["id"]))
        await _bump(tx, int(row["id"]))  # a new second factor (a lost phone?) ends the open sessions
        await audit.write(tx, actor=actor, action="user.totp", outcome="ok", target=username, at_ms=now)
    return secret, totp.provisioning_uri(secret, username)


async def start_totp(db: Database, at_rest: AtRest, username: str, *, actor: str,
                     now_ms: int | None = None) -> tuple[str, str]:
    """Enrolment on the console: a new secret that waits for its first code; returns ``(secret, otpauth URI)``.

    The secret is kept sealed in ``users.totp_pending_enc`` (migration 18) and does nothing
    until :func:`confirm_totp` sees a right code from the user's app; until then the old
    secret (if any) still signs the user in, so a mistyped scan never locks anyone out.
    """
    secret = totp.new_secret()
    now = _now_ms() if now_ms is None else now_ms
    async with db.transaction() as tx:
        row = await _need(tx, username, lock=True)
        await tx.execute("UPDATE users SET totp_pending_enc = $1 WHERE id = $2", at_rest.seal(secret, TOTP_COLUMN),
                         int(row["id"]))
        await audit.write(tx, actor=actor, action="user.totp.start", outcome="ok", target=username, at_ms=now)
    return secret, totp.provisioning_uri(secret, username)


async def pending_totp(db: Database, at_rest: AtRest, username: str) -> tuple[str, str] | None:
    """The secret and URI still waiting for their first code (shown again after a wrong one), or None."""
    async with db.transaction() as tx:
        row = await _need(tx, username)
    if row["totp_pending_enc"] is None:
        return None
    secret = at_rest.open(bytes(row["totp_pending_enc"]), TOTP_COLUMN)
    return secret, totp.provisioning_uri(secret, username)


async def confirm_totp(db: Database, at_rest: AtRest, username: str, code: str, *, actor: str,
                       now_ms: int | None = None) -> None:
    """Make the waiting secret the user's one-time-code secret once ``code`` from the app is right.

    The confirming code counts as used (it cannot sign in afterwards). Ends the user's open
    sessions, as any new second factor does. Raises :class:`UserError` (reason ``bad_code``
    or ``no_pending``); a wrong code is audited (``user.totp`` refused).
    """
    now = _now_ms() if now_ms is None else now_ms
    async with db.transaction() as tx:
        row = await _need(tx, username, lock=True)
        if row["totp_pending_enc"] is None:
            raise UserError(f"{username!r} has no new one-time-code secret waiting; show a new QR code first",
                            "no_pending")
        secret = at_rest.open(bytes(row["totp_pending_enc"]), TOTP_COLUMN)
        try:
            step = totp.verify(secret, code, unix_s=now / 1000)
        except AuthError as exc:
            failure = exc
        else:
            await tx.execute("UPDATE users SET totp_secret_enc = totp_pending_enc, totp_pending_enc = NULL, "
                             "last_totp_step = $1 WHERE id = $2", step, int(row["id"]))
            await _bump(tx, int(row["id"]))
            await audit.write(tx, actor=actor, action="user.totp", outcome="ok", target=username, at_ms=now)
            return
    async with db.transaction() as tx:
        await audit.write(tx, actor=actor, action="user.totp", outcome="refused", target=username, at_ms=now,
                          reason=getattr(failure, "reason", "bad_code"))
    raise UserError(f"the first one-time code for {username!r} is wrong: {failure}", "bad_code") from failure
