"""Admin users on the cloud database: two-factor login, lockout, sessions, roles, audit (both dialects)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cloud.db.engine import Database
from cloud.db.migrations import migrate
from cloud.records.crypto_at_rest import AtRest
from cloud.users import accounts as users
from cloud.users import sessions as user_sessions
from cloud.users import totp_enrolment as user_totp
from provisioning import totp
from provisioning.errors import Forbidden

NOW = 1_750_000_000_000
PASSWORD = "Correct-Horse-9"
AT_REST = AtRest(os.urandom(32), os.urandom(32))


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite:///{tmp_path / 'c.db'}" if request.param == "sqlite" else str(request.getfixturevalue("pg_dsn"))
    database = await Database.connect(url)
    await migrate(database)
    yield database
    await database.close()


def code(secret: str, at_ms: int) -> str:
    return totp.totp(totp.decode_secret(secret), at_ms / 1000)


async def audit(db: Database, target: str) -> list[tuple[str, str, str | None]]:
    async with db.transaction() as tx:
        rows = await tx.fetch("SELECT action, outcome, reason FROM audit_log WHERE target = $1 ORDER BY id", target)
    return [(r["action"], r["outcome"], r["reason"]) for r in rows]


async def test_login_needs_both_factors_and_a_code_is_used_once(db: Database) -> None:
    alice = await users.create_user(db, "alice", PASSWORD, roles=["admin"], actor="cli:root", display_name="李")
    assert alice.role == "admin" and not alice.totp_enabled and alice.can("hub:revoke")
    refused = await users.attempt_login(db, AT_REST, "alice", PASSWORD, "123456", now_ms=NOW)
    assert refused.reason == "no_second_factor" and "mchub cloud user totp" in refused.message
    secret, uri = await user_totp.enable_totp(db, AT_REST, "alice", actor="cli:root")
    assert uri.startswith("otpauth://totp/mchub%3Aalice?secret=" + secret)
    async with db.transaction() as tx:  # sealed at rest
        sealed = bytes(await tx.fetchval("SELECT totp_secret_enc FROM users WHERE username = 'alice'"))
    assert secret.encode() not in sealed and AT_REST.open(sealed, users.TOTP_COLUMN) == secret

    ok = await users.attempt_login(db, AT_REST, "alice", PASSWORD, code(secret, NOW), source="10.0.0.7", now_ms=NOW)
    assert ok.ok and ok.reason == "ok" and ok.user is not None and ok.user.last_login_ms == NOW
    replay = await users.attempt_login(db, AT_REST, "alice", PASSWORD, code(secret, NOW), now_ms=NOW + 1000)
    assert replay.reason == "code_reused" and replay.user is None  # said precisely: the password was right
    wrong_pw = await users.attempt_login(db, AT_REST, "alice", "Wrong-Horse-99", code(secret, NOW + 30_000),
                                         now_ms=NOW + 30_000)
    unknown = await users.attempt_login(db, AT_REST, "mallory", PASSWORD, "000000", now_ms=NOW)
    assert wrong_pw.message == unknown.message  # a wrong password never says whether the user exists
    assert await users.verify_login(db, "alice", PASSWORD, code(secret, NOW + 60_000), at_rest=AT_REST) is None  # clock
    assert await audit(db, "alice") == [
        ("user.add", "ok", None), ("admin.login_failed", "refused", "no_second_factor"), ("user.totp", "ok", None),
        ("admin.login", "ok", None), ("admin.login_failed", "refused", "code_reused"),
        ("admin.login_failed", "refused", "bad_credentials"), ("admin.login_failed", "refused", "bad_code"),
    ]
    assert await audit(db, "mallory") == [("admin.login_failed", "refused", "unknown_user")]


async def test_five_failures_lock_the_account_and_a_new_password_unlocks_it(db: Database) -> None:
    await users.create_user(db, "bob", PASSWORD, roles=["integration"], actor="alice")
    secret, _ = await user_totp.enable_totp(db, AT_REST, "bob", actor="alice")
    outcomes = [await users.attempt_login(db, AT_REST, "bob", PASSWORD, "000000", now_ms=NOW + i) for i in range(5)]
    assert [o.reason for o in outcomes] == ["bad_code"] * 4 + ["locked"]
    locked_until = outcomes[-1].locked_until_ms
    assert locked_until == NOW + 4 + 15 * 60_000
    right = await users.attempt_login(db, AT_REST, "bob", PASSWORD, code(secret, NOW + 60_000), now_ms=NOW + 60_000)
    assert right.reason == "locked" and right.user is None  # locked: not even the right factors get in
    await users.set_password(db, "bob", "Another-Horse-10", actor="alice")
    later = NOW + 120_000
    ok = await users.attempt_login(db, AT_REST, "bob", "Another-Horse-10", code(secret, later), now_ms=later)
    assert ok.ok and ok.user is not None and ok.user.roles == {"integration"} and not ok.user.can("hub:revoke")
    with pytest.raises(Forbidden):
        users.require(ok.user, "token:create")


async def test_sessions_end_on_logout_expiry_password_change_and_disable(db: Database) -> None:
    await users.create_user(db, "carol", PASSWORD, roles=["auditor", "clinic_staff"], actor="alice")
    carol = await users.get_user(db, "carol")
    assert carol is not None and carol.role == "clinic_staff" and carol.can("audit:read")
    token, expires = await user_sessions.create_session(db, carol, source="10.0.0.8", now_ms=NOW)
    assert expires == NOW + 8 * 3_600_000
    async with db.transaction() as tx:
        assert await tx.fetchval("SELECT COUNT(*) FROM admin_sessions WHERE token_digest = $1", token) == 0
    assert (await user_sessions.session_user(db, token, now_ms=NOW + 1)) == carol
    assert await user_sessions.session_user(db, token, now_ms=expires) is None
    assert await user_sessions.session_user(db, "mchs_forged", now_ms=NOW) is None
    await user_sessions.end_session(db, token)
    assert await user_sessions.session_user(db, token, now_ms=NOW + 1) is None
    second, _ = await user_sessions.create_session(db, carol, now_ms=NOW)
    await users.set_password(db, "carol", "Another-Horse-10", actor="alice")
    assert await user_sessions.session_user(db, second, now_ms=NOW + 1) is None
    third, _ = await user_sessions.create_session(db, carol, now_ms=NOW)
    await users.set_active(db, "carol", False, actor="alice")
    assert await user_sessions.session_user(db, third, now_ms=NOW + 1) is None
    await users.set_roles(db, "carol", ["admin"], actor="alice")
    assert [(u.username, u.roles, u.active) for u in await users.list_users(db)] == [("carol", {"admin"}, False)]


async def test_bad_input_is_refused_clearly(db: Database) -> None:
    with pytest.raises(users.UserError, match="12\\+ characters"):
        await users.create_user(db, "dave", "short", roles=["admin"], actor="x")
    with pytest.raises(users.UserError, match="roles must be some of"):
        await users.create_user(db, "dave", PASSWORD, roles=["root"], actor="x")
    with pytest.raises(users.UserError, match="user name"):
        await users.create_user(db, "Dave Smith", PASSWORD, roles=["admin"], actor="x")
    await users.create_user(db, "dave", PASSWORD, roles=["admin"], actor="x")
    with pytest.raises(users.UserError, match="already exists"):
        await users.create_user(db, "dave", PASSWORD, roles=["admin"], actor="x")
    with pytest.raises(users.UserError, match="no user"):
        await users.set_password(db, "erin", PASSWORD, actor="x")


def test_first_admin_from_the_command_line(tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(Path.cwd()), "PATH": "/usr/bin:/bin"}

    def mchub(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mchub", "cloud", *args], cwd=tmp_path, capture_output=True,
                              text=True, env=env)

    assert mchub("init").returncode == 0
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    r = mchub("user", "add", "alice", "--role", "admin", "--password-file", "pw")
    assert r.returncode == 0 and "secret:" in r.stdout and "otpauth://totp/" in r.stdout, r.stderr
    r = mchub("user", "add", "bob", "--role", "auditor", "--password-file", "pw", "--no-totp")
    assert r.returncode == 0 and "secret:" not in r.stdout
    r = mchub("user", "list")
    assert "alice" in r.stdout and "bob" in r.stdout and "2 user(s)" in r.stdout
    r = mchub("user", "add", "alice", "--role", "admin", "--password-file", "pw")
    assert r.returncode == 2 and "already exists" in r.stderr
    assert mchub("user", "totp", "bob").returncode == 0
    assert mchub("user", "disable", "bob").returncode == 0


async def test_each_sign_in_refusal_is_named_only_as_far_as_the_caller_proved_who_they_are(db: Database) -> None:
    """docs/dashboard.md "Sign-in messages": one case per reason."""
    await users.create_user(db, "fay", PASSWORD, roles=["integration"], actor="x", now_ms=NOW)
    secret, _ = await user_totp.enable_totp(db, AT_REST, "fay", actor="x")

    async def login(name: str, password: str, one_time: str, at: int, **kw: int) -> users.LoginOutcome:
        return await users.attempt_login(db, AT_REST, name, password, one_time, now_ms=at, **kw)

    # wrong password and unknown name: the same answer, whatever the code
    unknown = await login("nobody", PASSWORD, code(secret, NOW), NOW)
    wrong_pw = await login("fay", "Wrong-Horse-99", code(secret, NOW), NOW)
    assert (unknown.reason, wrong_pw.reason) == ("bad_credentials", "bad_credentials")
    assert unknown.message == wrong_pw.message and "用户名或密码错误" in unknown.message
    # the right password, a wrong code; the right password, a used code
    assert (await login("fay", PASSWORD, "000000", NOW)).reason == "bad_code"
    assert (await login("fay", PASSWORD, "12345", NOW)).reason == "bad_code"  # malformed
    assert (await login("fay", PASSWORD, code(secret, NOW), NOW)).ok
    reused = await login("fay", PASSWORD, code(secret, NOW), NOW + 5_000)
    assert reused.reason == "code_reused" and "wait for the next one" in reused.message
    # password older than the limit: refused after both factors, the code is spent, the login not recorded
    t = NOW + 30_000
    expired = await login("fay", PASSWORD, code(secret, t), t, password_max_age_ms=10_000)
    assert expired.reason == "password_expired" and expired.user is None
    assert (await login("fay", PASSWORD, code(secret, t), t)).reason == "code_reused"
    t += 30_000
    assert (await login("fay", PASSWORD, code(secret, t), t, password_max_age_ms=86_400_000)).ok
    # disabled: said only to someone with the password
    await users.set_active(db, "fay", False, actor="x")
    t += 30_000
    assert (await login("fay", PASSWORD, code(secret, t), t)).reason == "disabled"
    assert (await login("fay", "Wrong-Horse-99", code(secret, t), t)).reason == "bad_credentials"
    await users.set_active(db, "fay", True, actor="x")
    # locked: said before anything is checked (the web adds the same lock for unknown names)
    outcomes = [await login("fay", "Wrong-Horse-99", "000000", t + i) for i in range(5)]
    assert outcomes[-1].reason == "locked" and outcomes[-1].locked_until_ms
    assert (await login("fay", PASSWORD, code(secret, t + 30_000), t + 30_000)).reason == "locked"
    reasons = [r for action, _, r in await audit(db, "fay") if action == "admin.login_failed"]
    assert {"bad_credentials", "bad_code", "code_reused", "password_expired", "disabled", "locked"} <= set(reasons)


async def test_a_new_secret_waits_for_its_first_code(db: Database) -> None:
    await users.create_user(db, "gus", PASSWORD, roles=["admin"], actor="x")
    secret, uri = await user_totp.start_totp(db, AT_REST, "gus", actor="web:root", now_ms=NOW)
    assert uri.startswith("otpauth://totp/mchub%3Agus?secret=" + secret)
    gus = await users.get_user(db, "gus")
    assert gus is not None and gus.totp_pending and not gus.totp_enabled
    assert await user_totp.pending_totp(db, AT_REST, "gus") == (secret, uri)
    pending = await users.attempt_login(db, AT_REST, "gus", PASSWORD, code(secret, NOW), now_ms=NOW)
    assert pending.reason == "no_second_factor"  # not active before it is confirmed
    with pytest.raises(users.UserError) as wrong:
        await user_totp.confirm_totp(db, AT_REST, "gus", "000000", actor="web:root", now_ms=NOW)
    assert wrong.value.reason == "bad_code"
    await user_totp.confirm_totp(db, AT_REST, "gus", code(secret, NOW), actor="web:root", now_ms=NOW)
    gus = await users.get_user(db, "gus")
    assert gus is not None and gus.totp_enabled and not gus.totp_pending
    assert await user_totp.pending_totp(db, AT_REST, "gus") is None
    # the confirming code is spent; the next one signs in
    assert (await users.attempt_login(db, AT_REST, "gus", PASSWORD, code(secret, NOW), now_ms=NOW)).reason \
        == "code_reused"
    assert (await users.attempt_login(db, AT_REST, "gus", PASSWORD, code(secret, NOW + 30_000),
                                      now_ms=NOW + 30_000)).ok
    # a new QR code: the old secret works until the new one is confirmed
    newer, _ = await user_totp.start_totp(db, AT_REST, "gus", actor="web:root", now_ms=NOW + 60_000)
    assert (await users.attempt_login(db, AT_REST, "gus", PASSWORD, code(secret, NOW + 60_000),
                                      now_ms=NOW + 60_000)).ok
    await user_totp.confirm_totp(db, AT_REST, "gus", code(newer, NOW + 90_000), actor="web:root", now_ms=NOW + 90_000)
    assert (await users.attempt_login(db, AT_REST, "gus", PASSWORD, code(secret, NOW + 120_000),
                                      now_ms=NOW + 120_000)).reason == "bad_code"
    with pytest.raises(users.UserError) as none_waiting:
        await user_totp.confirm_totp(db, AT_REST, "gus", "123456", actor="web:root")
    assert none_waiting.value.reason == "no_pending"
    assert [(a, o, r) for a, o, r in await audit(db, "gus") if a.startswith("user.totp")] == [
        ("user.totp.start", "ok", None), ("user.totp", "refused", "bad_code"), ("user.totp", "ok", None),
        ("user.totp.start", "ok", None), ("user.totp", "ok", None)]
