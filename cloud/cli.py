"""``mchub cloud``: 云端同步服务 / the cloud sync server.

Subcommands: init, migrate, serve, site add, hub add|add-key|revoke|list, import, outbox, user, dicom-sender, mch,
command.
Heavy imports happen inside the handlers so ``mchub --help`` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from cloud.mch import cli as mch_cli

EPILOG = """\
examples / 示例:
  mchub cloud init --config cloud.toml          create cloud.toml (SQLite) and the key directory
  mchub cloud site add --id chengguan --name 城关镇卫生院
  mchub cloud hub add --id chengguan-h01 --site chengguan --public-key 3b6a27bc...   (hub's Ed25519 key, hex)
  mchub cloud hub list
  mchub cloud serve --config cloud.toml --workers 2   (2+ workers need PostgreSQL)
  mchub cloud integrate --config cloud.toml      MLLP/DICOM/HIS owner alone (with serve --no-integrate)
  mchub cloud import /media/usb/H001-2025-03-01.mchx  (a hand-carried export file)
  mchub cloud outbox list                        queue depths and dead letters with the receiver's reason
  mchub cloud outbox replay 42                   queue dead letter 42 again (audited)
  mchub cloud audit verify                       check the hash-chained audit log (exit 1 if altered)
  mchub cloud user add alice --role admin        first admin: asks for a password, prints the TOTP secret
  mchub cloud dicom-sender add PACS1             STOW-RS credential for a PACS (token printed once)
"""


def _cfg(args: argparse.Namespace) -> Any:
    from cloud.config import load

    return load(args.config)


def _run(coro: Callable[[Any, argparse.Namespace], Coroutine[Any, Any, int]]) -> Callable[[argparse.Namespace], int]:
    """Wrap an async handler: load config, report CloudError as one clear line, exit 2."""

    def handler(args: argparse.Namespace) -> int:
        from cloud.errors import CloudError

        try:
            return asyncio.run(coro(_cfg(args), args))
        except CloudError as exc:
            print(f"mchub cloud: {exc}", file=sys.stderr)
            return 2

    return handler


def _init(args: argparse.Namespace) -> int:
    from cloud.config import EXAMPLE, load
    from cloud.errors import CloudError
    from cloud.intake.keystore import init_keys

    path = Path(args.config)
    try:
        if not path.exists():
            path.write_text(EXAMPLE, encoding="utf-8")
            print(f"wrote {path} (SQLite, one worker; edit [database] url for PostgreSQL)")
        cfg = load(path)
        if cfg.admin_token_file is not None and not cfg.admin_token_file.exists():
            fd = os.open(cfg.admin_token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32) + "\n")
            print(f"wrote admin token {cfg.admin_token_file} (mode 0600)")
        keys = init_keys(cfg.keys_dir)
    except CloudError as exc:
        print(f"mchub cloud: {exc}", file=sys.stderr)
        return 2
    print(f"created keys in {cfg.keys_dir} (mode 0600). Public keys for hubs / 公钥:")
    doc = keys.public_document()
    for label, key in doc["recipients"].items():  # type: ignore[attr-defined]
        print(f"  recipient {label}: key id {key['key_id']}\n    {key['public_key'][:96]}...")
    print(f"  signing (acks, commands): {doc['signing_public_key']}")
    return 0


async def _migrate(cfg: Any, args: argparse.Namespace) -> int:
    from cloud.server.serve import migrate_database

    done = await migrate_database(cfg)
    print("\n".join(f"applied {m}" for m in done) or "database is up to date")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from cloud.errors import CloudError
    from cloud.server.serve import serve

    try:
        return serve(_cfg(args), args.workers, args.host, args.port, integrate=not args.no_integrate)
    except CloudError as exc:
        print(f"mchub cloud: {exc}", file=sys.stderr)
        return 2


async def _integrate(cfg: Any, args: argparse.Namespace) -> int:
    from cloud.integration.service import run_owner
    from cloud.server import logs

    logs.setup(cfg.logging.level, cfg.logging.json)
    return await run_owner(cfg)


async def _with_fleet(cfg: Any, fn: Callable[[Any], Awaitable[int]]) -> int:
    """Run ``fn(fleet)`` on the one fleet registry (cloud.fleet.service.Fleet) of this cloud.toml."""
    from cloud.db.engine import Database
    from cloud.errors import RegistryError
    from cloud.fleet.service import Fleet
    from cloud.intake.keystore import load_keys
    from cloud.server.serve import migrate_database
    from provisioning.errors import ProvisioningError

    await migrate_database(cfg)
    db = await Database.connect(cfg.database.url, 2)
    try:
        return await fn(Fleet.from_config(cfg, db, load_keys(cfg.keys_dir), with_authority=False))
    except ProvisioningError as exc:
        raise RegistryError(str(exc)) from exc
    finally:
        await db.close()


def _actor() -> str:
    return f"cli:{os.environ.get('USER', '?')}"


async def _site_add(cfg: Any, args: argparse.Namespace) -> int:
    async def go(fleet: Any) -> int:
        await fleet.ensure_site(_actor(), args.id, args.name)
        print(f"site {args.id} ready")
        return 0

    return await _with_fleet(cfg, go)


def _public_key(text: str) -> bytes:
    from cloud.errors import RegistryError

    try:
        return bytes.fromhex(text)
    except ValueError as exc:
        raise RegistryError(f"--public-key 不是十六进制 / --public-key is not hex ({exc}): give the 64 hex digits "
                            "`mchub edge init` printed after 'ed25519:'") from exc


async def _hub_add(cfg: Any, args: argparse.Namespace) -> int:
    key = _public_key(args.public_key)

    async def go(fleet: Any) -> int:
        await fleet.ensure_site(_actor(), args.site)
        kid = await fleet.register_hub(_actor(), args.id, site_id=args.site, public_key=key)
        print(f"hub {args.id} registered with key id {kid}")
        return 0

    return await _with_fleet(cfg, go)


async def _hub_add_key(cfg: Any, args: argparse.Namespace) -> int:
    key = _public_key(args.public_key)

    async def go(fleet: Any) -> int:
        kid = await fleet.add_key(_actor(), args.id, key)
        print(f"hub {args.id}: added key {kid}; expire the old one with its id when the hub has switched")
        return 0

    return await _with_fleet(cfg, go)


async def _hub_revoke(cfg: Any, args: argparse.Namespace) -> int:
    async def go(fleet: Any) -> int:
        outcome = await fleet.revoke_hub(_actor(), args.id, args.reason)
        print(f"hub {args.id} revoked: its batches, configuration requests and key rotations are refused (403) "
              "and every key is retired")
        print("  MQTT login: " + ("removed from the broker's password file and the broker reloaded"
                                  if outcome.broker_updated else
                                  "NOT removed: no [provisioning] mqtt_password_file, or the reload failed "
                                  "(see the log); remove the hub from the broker by hand"))
        print("  revoke command: " + ("pushed to the hub over MQTT" if outcome.pushed else
                                      "not pushed (no [mqtt] broker reachable); the hub stops at its next sync"))
        return 0

    return await _with_fleet(cfg, go)


async def _hub_list(cfg: Any, args: argparse.Namespace) -> int:
    async def go(fleet: Any) -> int:
        hubs = await fleet.hub_infos(args.site)
        if not hubs:
            print("还没有网关 / no hubs yet: mchub cloud hub add --id ID --public-key HEX, or enroll one "
                  "(mchub provision token create --site SITE)")
            return 0
        print(f"{'hub':<20} {'site':<12} {'status':<8} {'online':<6} {'queue':>6}  marks (epoch:seq)")
        for h in hubs:
            marks = " ".join(f"{e & 0xFFFF_FFFF_FFFF_FFFF:x}:{s}" for e, s in h.acked_through.items())
            print(f"{h.hub_id:<20} {h.site_id:<12} {h.status:<8} {'yes' if h.online else 'no':<6} "
                  f"{h.queue_depth if h.queue_depth is not None else '-':>6}  {marks}")
        print(f"{len(hubs)} hub(s)")
        return 0

    return await _with_fleet(cfg, go)


async def _import(cfg: Any, args: argparse.Namespace) -> int:
    from cloud.db.engine import Database
    from cloud.intake.importer import import_file
    from cloud.intake.ingest import Ingestor
    from cloud.intake.keystore import load_keys
    from cloud.server.serve import migrate_database

    await migrate_database(cfg)
    db = await Database.connect(cfg.database.url, 2)
    try:
        ingestor = Ingestor(db, load_keys(cfg.keys_dir))
        worst = 0
        for name in args.files:
            report = await import_file(ingestor, Path(name))
            summary = ", ".join(f"{k}: {v}" for k, v in sorted(report.outcomes.items()))
            print(f"{name}: {report.batches} batch(es), {report.readings} new reading(s) [{summary}]")
            if report.refused:
                print(f"{name}: {report.refused} record(s) refused one by one, the rest stored; they are listed on "
                      "the dashboard and wait on the hub's dead-letter list after its next sync")
            if report.problem:
                print(f"error: {report.problem}", file=sys.stderr)
            worst = max(worst, 0 if set(report.outcomes) <= {"200"} and not report.problem else 1)
        return worst
    finally:
        await db.close()


async def _command(cfg: Any, args: argparse.Namespace) -> int:
    from cloud.fleet.mqtt import MqttError

    async def go(fleet: Any) -> int:
        body = await fleet.send_command(_actor(), args.hub, args.name, dict(a.split("=", 1) for a in args.arg))
        if body is None:
            raise MqttError(f"could not publish the command: [mqtt] is not enabled in {cfg.path}, or the broker "
                            f"{cfg.mqtt.host}:{cfg.mqtt.port} refused it (see the log)")
        print(f"sent {body.name} to {body.hub_id} (command id {body.id})")
        return 0

    return await _with_fleet(cfg, go)


async def _outbox(cfg: Any, args: argparse.Namespace) -> int:
    from cloud import outbox
    from cloud.db.engine import Database
    from cloud.server.serve import migrate_database

    await migrate_database(cfg)  # a fresh database has no outbox table yet
    db = await Database.connect(cfg.database.url, 2)
    try:
        if args.action == "replay":
            for message_id in args.ids:
                await outbox.replay(db, message_id, actor=f"cli:{os.environ.get('USER', '?')}")
                print(f"message {message_id} is queued again")
            return 0
        async with db.transaction() as tx:
            depth = await outbox.depths(tx)
            dead = await tx.fetch("SELECT id, topic, idempotency_key, attempts, last_error FROM outbox "
                                  "WHERE status = 'dead' ORDER BY id LIMIT 50")
        for (topic, status), n in sorted(depth.items()):
            print(f"{topic:<20} {status:<8} {n:>8}")
        for r in dead:
            print(f"dead #{r['id']} {r['topic']} {r['idempotency_key']} after {r['attempts']} attempt(s): "
                  f"{r['last_error']}")
        if not depth and not dead:
            print("出站队列为空，没有失败消息 / nothing queued, no dead letters")
        return 0
    finally:
        await db.close()


async def _audit(cfg: Any, args: argparse.Namespace) -> int:
    from cloud.audit import chain as audit_chain
    from cloud.db.engine import Database
    from cloud.server.serve import migrate_database

    await migrate_database(cfg)
    db = await Database.connect(cfg.database.url, 2)
    try:
        if args.action in ("seal", "verify"):
            sealed = await audit_chain.seal_all(db)
            if args.action == "seal":
                print(f"sealed {sealed} entr{'y' if sealed == 1 else 'ies'}")
                return 0
        if args.action == "prune":
            days = args.days or cfg.audit.retention_days
            if days < 183:
                print("mchub cloud audit: --days must be at least 183 (six months)", file=sys.stderr)
                return 2
            print(f"pruned {await audit_chain.prune(db, days)} entries older than {days} days")
        verdict = await audit_chain.verify(db)
        print(verdict.describe())
        return 0 if verdict.ok else 1
    finally:
        await db.close()


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``cloud`` subcommands."""
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default="cloud.toml", help="配置文件 / configuration file (default: cloud.toml)")
    sub = parser.add_subparsers(dest="cloud_command", metavar="SUBCOMMAND")

    def add(name: str, help_: str, func: Callable[[argparse.Namespace], int], parent: Any = sub) -> Any:
        p = parent.add_parser(name, help=help_, description=help_, parents=[common])
        p.set_defaults(func=func)
        return p

    add("init", "创建配置与密钥 / create cloud.toml (if missing) and the key directory; print public keys", _init)
    add("migrate", "升级数据库结构 / apply pending database migrations", _run(_migrate))
    p = add("serve", "启动云服务 / run the HTTPS API workers", _serve)
    p.add_argument("--workers", type=int, help="工作进程数 / worker processes (default: [server] workers)")
    p.add_argument("--host", help="监听地址 / listen address (default: [server] host)")
    p.add_argument("--port", type=int, help="监听端口 / listen port (default: [server] port)")
    p.add_argument("--no-integrate", action="store_true",
                   help="不在此进程运行 MLLP 监听、DICOM SCP 和 HIS 发送 / "
                        "do not run the MLLP listener, DICOM SCP and HIS sender here (run `integrate` elsewhere)")
    add("integrate", "医院接口 / run the hospital integration alone: MLLP listener, DICOM C-STORE SCP, HL7 "
        "processing, vitals to the HIS ([mllp], [dicom], [his]); one such process per deployment", _run(_integrate))
    help_ = "机构 / sites (without provisioning)"
    site = sub.add_parser("site", help=help_, description=help_).add_subparsers(dest="site_command", metavar="ACTION")
    p = add("add", "添加机构 / create a site", _run(_site_add), site)
    p.add_argument("--id", required=True, help="机构编号 / site id")
    p.add_argument("--name", default="", help="机构名称 / display name")
    help_ = "网关 / hubs: add, add-key, revoke, list"
    hub = sub.add_parser("hub", help=help_, description=help_).add_subparsers(dest="hub_command", metavar="ACTION")
    p = add("add", "添加网关 / register a hub with its Ed25519 public key (without provisioning)", _run(_hub_add),
            hub)
    p.add_argument("--id", required=True, help="网关编号 / hub id (A-Z a-z 0-9 . _ -)")
    p.add_argument("--public-key", required=True,
                   help="网关公钥 / the hub's raw Ed25519 public key, 64 hex digits (`mchub edge init` prints it)")
    p.add_argument("--site", default="default",
                   help="机构编号 / site id (created if missing; default: 'default')")
    p = add("add-key", "添加密钥 / add a second key to a hub (rotation overlap)", _run(_hub_add_key), hub)
    p.add_argument("--id", required=True)
    p.add_argument("--public-key", required=True)
    p = add("revoke", "吊销网关 / revoke a hub (a lost or stolen hub): every key retired, MQTT login removed, revoke "
            "command pushed; its batches are refused from now on", _run(_hub_revoke), hub)
    p.add_argument("--id", required=True, help="网关编号 / hub id")
    p.add_argument("--reason", required=True, help="原因（记入审计日志）/ why (kept in the audit log)")
    p = add("list", "网关列表 / list hubs with status, presence and sync marks", _run(_hub_list), hub)
    p.add_argument("--site", default=None)
    p = add("import", "导入离线导出文件 / import hand-carried export files (docs/protocol.md §7)", _run(_import))
    p.add_argument("files", nargs="+", metavar="FILE")
    p = add("outbox", "出站队列 / outbound queues: list depths and dead letters, or replay dead letters",
            _run(_outbox))
    p.add_argument("action", choices=["list", "replay"])
    p.add_argument("ids", nargs="*", type=int, metavar="ID", help="要重放的死信编号 / dead-letter ids to replay")
    p = add("audit", "审计日志 / audit log: verify the hash chain (exit 1 if altered), seal, prune", _run(_audit))
    p.add_argument("action", choices=["verify", "seal", "prune"])
    p.add_argument("--days", type=int, help="清理：保留天数 / "
                                            "prune: retention in days (default: [audit] retention_days)")
    from cloud.users import cli as user_cli

    user_cli.register(sub, add, _run)
    from cloud.integration import dicom_sender_cli

    dicom_sender_cli.register(sub, add, _run)
    mch_cli.register(sub, add, _run)
    p = add("command", "下发指令 / send a signed command to a hub over MQTT", _run(_command))
    p.add_argument("--hub", required=True)
    p.add_argument("name", choices=["sync-now", "reload-config", "rotate-key", "ping", "apply-config",
                                    "resend-dead-letter", "dismiss-dead-letter"],
                   help="指令名 / "
                        "resend-dead-letter / dismiss-dead-letter: --arg seq=N [--arg drop=CODE,CODE] [--arg by=NAME] "
                        "(a record the cloud refused, see the dashboard)")
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE")
