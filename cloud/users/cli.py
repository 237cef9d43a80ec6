"""``mchub cloud user``: 管理员账户 / admin accounts on this cloud's database (add, list, passwd, totp, roles, disable).

Run on the cloud server itself (it needs the configuration, the database and the key
directory, whose at-rest key seals TOTP secrets). The first admin is created here::

    mchub cloud user add alice --role admin       # asks for the password, prints the TOTP secret once

Every change is audited with the operating-system user as the actor (``cli:<login>``).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cloud.records.crypto_at_rest import AtRest


ROLE_HELP = ("角色 / admin: everything; integration: queues, dead letters, read fleet; clinic_staff: read sites, hubs, "
             "devices; auditor: read the audit log and the fleet")


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _password(args: argparse.Namespace) -> str:
    if args.password_file:
        lines = Path(args.password_file).read_text(encoding="utf-8").splitlines()
        return lines[0] if lines else ""
    try:
        first = getpass.getpass("新密码 / new password: ")
        again = getpass.getpass("再输一次 / again: ")
    except EOFError:
        print("没有输入密码 / no password given: run it in a terminal, or give --password-file FILE",
              file=sys.stderr)
        raise SystemExit(2) from None
    if again != first:
        print("两次输入不一致，请重新运行 / the two entries differ; run it again", file=sys.stderr)
        raise SystemExit(2)
    return first


def _at_rest(cfg: Any) -> AtRest:
    from cloud.intake.keystore import load_keys
    from cloud.records.crypto_at_rest import AtRest

    keys = load_keys(cfg.keys_dir)
    return AtRest(keys.at_rest, keys.blind_index)


def _show_totp(secret: str, uri: str) -> None:
    print("动态码密钥（只显示一次，请用手机验证器扫描或输入）/ one-time-code secret (shown once; add it to an "
          "authenticator app):")
    print(f"  secret: {secret}")
    print(f"  uri:    {uri}")


async def _with_db(cfg: Any, fn: Callable[[Any], Any]) -> int:
    from cloud.db.engine import Database
    from cloud.server.serve import migrate_database

    await migrate_database(cfg)
    db = await Database.connect(cfg.database.url, 2)
    try:
        result: int = await fn(db)
        return result
    finally:
        await db.close()


async def _add(cfg: Any, args: argparse.Namespace) -> int:
    from cloud.users import accounts as users
    from cloud.users import totp_enrolment as user_totp

    at_rest = _at_rest(cfg)
    password = _password(args)

    async def go(db: Any) -> int:
        user = await users.create_user(db, args.username, password, roles=args.role, actor=_actor(),
                                       display_name=args.display_name)
        print(f"用户已创建 / user {user.username} created with role(s) {', '.join(sorted(user.roles))}")
        if not args.no_totp:
            _show_totp(*await user_totp.enable_totp(db, at_rest, user.username, actor=_actor()))
        return 0

    return await _with_db(cfg, go)


async def _list(cfg: Any, args: argparse.Namespace) -> int:
    from cloud.users import accounts as users

    async def go(db: Any) -> int:
        rows = await users.list_users(db)
        if not rows:
            print("还没有账户 / no accounts yet: mchub cloud user add NAME --role admin")
            return 0
        print(f"{'user':<20} {'roles':<28} {'active':<6} {'totp':<5} last login")
        for u in rows:
            last = "-" if u.last_login_ms is None else _when(u.last_login_ms)
            print(f"{u.username:<20} {','.join(sorted(u.roles)):<28} {'yes' if u.active else 'no':<6} "
                  f"{'yes' if u.totp_enabled else 'no':<5} {last}")
        print(f"{len(rows)} user(s)")
        return 0

    return await _with_db(cfg, go)


def _when(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000).astimezone().strftime("%Y-%m-%d %H:%M")


async def _passwd(cfg: Any, args: argparse.Namespace) -> int:
    from cloud.users import accounts as users

    password = _password(args)

    async def go(db: Any) -> int:
        await users.set_password(db, args.username, password, actor=_actor())
        print(f"密码已更新，原有登录已失效 / password of {args.username} changed; its sessions ended")
        return 0

    return await _with_db(cfg, go)


async def _totp(cfg: Any, args: argparse.Namespace) -> int:
    from cloud.users import totp_enrolment as user_totp

    at_rest = _at_rest(cfg)

    async def go(db: Any) -> int:
        _show_totp(*await user_totp.enable_totp(db, at_rest, args.username, actor=_actor()))
        return 0

    return await _with_db(cfg, go)


async def _roles(cfg: Any, args: argparse.Namespace) -> int:
    from cloud.users import accounts as users

    async def go(db: Any) -> int:
        await users.set_roles(db, args.username, args.role, actor=_actor())
        print(f"{args.username}: {', '.join(sorted(args.role))}")
        return 0

    return await _with_db(cfg, go)


async def _active(cfg: Any, args: argparse.Namespace) -> int:
    from cloud.users import accounts as users

    async def go(db: Any) -> int:
        await users.set_active(db, args.username, args.user_command == "enable", actor=_actor())
        print(f"{args.username}: {args.user_command}d")
        return 0

    return await _with_db(cfg, go)


def register(sub: Any, add: Callable[..., Any], run: Callable[..., Any]) -> None:
    """Add ``user`` to the ``mchub cloud`` subparsers (``add``/``run`` are cloud/cli.py's helpers)."""
    from provisioning.auth import ROLE_PERMISSIONS  # light: `mchub --help` works on a hub-only install

    roles = tuple(ROLE_PERMISSIONS)
    user = sub.add_parser("user", help="管理员账户 / admin accounts: add, list, passwd, totp, roles, disable, enable",
                          description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = user.add_subparsers(dest="user_command", metavar="ACTION")
    pw_help = "从此文件（第一行）读取口令，不再询问 / read the password from this file (first line) instead of asking"
    p = add("add", "添加账户 / create an account and print its one-time-code secret", run(_add), actions)
    p.add_argument("username", help="用户名 / user name: 2-64 of a-z 0-9 . _ -")
    p.add_argument("--role", action="append", required=True, choices=roles, help=ROLE_HELP)
    p.add_argument("--display-name", default="")
    p.add_argument("--password-file", help=pw_help)
    p.add_argument("--no-totp", action="store_true", help="暂不绑定动态码应用（暂时无法登录） / "
                                                          "do not enrol a one-time-code app now (cannot log in yet)")
    add("list", "账户列表 / every account with roles, TOTP and last login", run(_list), actions)
    p = add("passwd", "重设口令 / set a new password (ends the user's sessions, clears a lock)", run(_passwd), actions)
    p.add_argument("username")
    p.add_argument("--password-file", help=pw_help)
    p = add("totp", "重设动态码 / enrol a new one-time-code secret (replaces the old one)", run(_totp), actions)
    p.add_argument("username")
    p = add("roles", "设置角色 / replace the user's roles", run(_roles), actions)
    p.add_argument("username")
    p.add_argument("--role", action="append", required=True, choices=roles, help=ROLE_HELP)
    for name, text in (("disable", "停用账户 / disable the account (its sessions end at once)"),
                       ("enable", "启用账户 / re-enable it")):
        p = add(name, text, run(_active), actions)
        p.add_argument("username")
