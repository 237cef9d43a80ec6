"""``mchub edge``: 诊所网关 / the clinic hub's commands. Help and messages are Chinese first, then English.

    mchub edge init --hub-id H --cloud-key cloud.json [--config hub.toml]   create the identity (by hand)
    mchub edge enroll --cloud URL --token T [--config hub.toml]            or: enroll with a one-time token
    mchub edge check-config --config hub.toml                               validate, print a summary
    mchub edge run --config hub.toml                                        the daemon
    mchub edge status --config hub.toml [--json]                            what the hub is doing
    mchub edge export --config hub.toml --out FILE [--since SEQ|DATE]       hand-carry unsynced records
    mchub edge backup --config hub.toml --out FILE                          consistent copy of hub.db
    mchub edge restore --config hub.toml --from FILE                        restore a backup (new epoch)
    mchub edge hash-password [--out FILE]                                   hash a staff PIN (6+ digits) to a 0600 file
    mchub edge move-secrets --config hub.toml                               move inline PIN hashes to 0600 files
    mchub edge dead-letters list|resend SEQ [--drop CODE]|dismiss SEQ       records the cloud refused
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

EPILOG = """\
examples / 示例:
  mchub edge enroll --cloud https://cloud.example.org --token XXXXX-XXXXX-XXXXX-XXXXX-XXXXX
  mchub edge init --hub-id clinic-042 --cloud-key cloud.json --config /etc/mchub/hub.toml
  mchub edge check-config --config /etc/mchub/hub.toml
  mchub edge run --config /etc/mchub/hub.toml
  mchub edge status --config /etc/mchub/hub.toml
  mchub edge export --config /etc/mchub/hub.toml --out /media/usb/clinic-042.mchx
  mchub edge backup --config /etc/mchub/hub.toml --out /media/usb/hub-backup.db
  mchub edge restore --config /etc/mchub/hub.toml --from /media/usb/hub-backup.db   (hub stopped)

网关把每条测量保存在 data_dir/hub.db，直到云端确认并过了保留期；断网几周也不丢数据，
`status` 显示有多少条在等待、从何时起。
The hub keeps every reading in data_dir/hub.db until the cloud has acknowledged it and the
retention period has passed. If the network is down for weeks nothing is lost; `status`
shows how many records wait and since when.
"""


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``edge`` subcommands."""
    parser.epilog = EPILOG
    sub = parser.add_subparsers(dest="edge_command", metavar="SUBCOMMAND")

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--config", default="/etc/mchub/hub.toml", type=Path,
                       help="网关配置文件 / hub configuration file (default: /etc/mchub/hub.toml)")
        return p

    p = add("init", "手工创建网关身份 / create the hub identity by hand (signing key, data key, cloud keys) and "
                    "print the command that registers it in the cloud")
    p.add_argument("--hub-id", required=True,
                   help="网关编号 / this hub's id, as the cloud administrator assigned it (A-Z a-z 0-9 . _ -)")
    p.add_argument("--cloud-key", required=True, type=Path,
                   help="云端公钥文件 / the cloud key file from the administrator (GET /api/v1/keys)")
    p.set_defaults(func=_init)
    add("check-config", "检查配置 / validate hub.toml and the identity; print what the hub would run").set_defaults(
        func=_check)
    add("run", "运行网关 / run the hub daemon (stop with Ctrl-C or SIGTERM; SIGHUP reloads the config)").set_defaults(
        func=_run)
    p = add("status", "网关状态 / show devices, sync queue, today's sessions and unbound readings")
    p.add_argument("--json", action="store_true", help="输出 JSON / print JSON instead of text")
    p.set_defaults(func=_status)
    from edge import enrolled

    enrolled.register(sub)  # enroll, rotate-key (provisioning)
    p = add("export", "导出未同步记录 / write unsynced records to an export file (.mchx) for hand carry; the "
                      "cloud imports it with `mchub cloud import FILE`")
    p.add_argument("--out", required=True, type=Path,
                   help="输出文件 / file to write, e.g. /media/usb/clinic-042.mchx")
    p.add_argument("--since", help="起点 / start at this seq or date (default: first record the cloud has not acked)")
    p.add_argument("--from-db", type=Path,
                   help="从此数据库导出 / export from this database instead, e.g. a quarantined hub.db")
    p.set_defaults(func=_export)
    p = add("backup", "备份数据库 / write a consistent copy of hub.db (safe while the hub runs)")
    p.add_argument("--out", required=True, type=Path, help="备份文件 / backup file to write, e.g. on a USB stick")
    p.set_defaults(func=_backup)
    p = add("restore", "恢复备份 / make a backup the hub's database, under a new epoch (stop the hub first)")
    p.add_argument("--from", dest="source", required=True, type=Path, help="备份文件 / the backup file")
    p.set_defaults(func=_restore)
    p = sub.add_parser("hash-password", help="口令哈希 / hash a staff PIN (6+ digits) or password for [[web.users]] "
                                             "secret_file",
                       description="读取两次 PIN 或口令（不回显；或从管道读一行），把 scrypt 哈希写入 --out"
                                   "（权限 0600，在 hub.toml 中以 secret_file 引用）或打印出来。 / "
                                   "Reads the PIN or password twice (not echoed; or one line from a pipe) and "
                                   "writes its scrypt hash to --out (mode 0600; name it in hub.toml as "
                                   "secret_file), or prints it.")
    p.add_argument("--out", type=Path, help="密钥文件 / secret file to write, e.g. /etc/mchub/staff/nurse.pin")
    p.set_defaults(func=_hash)
    add("move-secrets", "迁移口令哈希 / move inline secret_hash values of hub.toml to 0600 files (staff/NAME.pin) "
                        "and write secret_file instead").set_defaults(func=_move_secrets)
    p = add("dead-letters", "被拒收的记录 / records the cloud refused one by one: list them, resend one as a new "
                            "reading (optionally without some values), or dismiss it")
    p.add_argument("action", choices=("list", "resend", "dismiss"), help="列出、重发或忽略 / list, resend or dismiss")
    p.add_argument("seq", nargs="?", type=int, help="被拒记录的序号 / the refused record's seq (resend, dismiss)")
    p.add_argument("--drop", action="append", default=[], metavar="CODE",
                   help="重发时去掉此观测代码的值（可重复）/ resend without the values of this observation code "
                        "(repeatable)")
    p.add_argument("--all", action="store_true",
                   help="也列出已重发或已忽略的 / list: also those already resent or dismissed")
    p.add_argument("--by", default="console",
                   help="审计日志中的姓名 / name recorded in the audit log (default: console)")
    p.add_argument("--json", action="store_true", help="输出 JSON / list: print JSON")
    p.set_defaults(func=_dead_letters)

    def _help(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=_help)


def _load(args: argparse.Namespace) -> Any:
    from edge import config

    return config.load(args.config)


def _fail(exc: Exception) -> int:
    print(f"错误 / error: {exc}", file=sys.stderr)
    return 2


def _init(args: argparse.Namespace) -> int:
    from edge import identity
    from edge.errors import EdgeError

    try:
        directory = _load(args).identity_dir if args.config.exists() else Path("identity").resolve()
        ident = identity.init(directory, args.hub_id, args.cloud_key)
    except EdgeError as exc:
        return _fail(exc)
    print(f"网关身份已创建 / identity created in {directory}")
    print(f"网关编号 / hub id:     {ident.hub_id}")
    print(f"公钥 / public key:     ed25519:{ident.public_hex}")
    print("在云端添加此网关（云端服务器上，cloud.toml 所在目录；--site 填机构编号）/ register it in the cloud "
          "(on the cloud server, next to cloud.toml; --site names its clinic):")
    print(f"  mchub cloud hub add --id {ident.hub_id} --public-key {ident.public_hex} --site default")
    return 0


def _check(args: argparse.Namespace) -> int:
    from edge import identity
    from edge.config import validate_devices
    from edge.errors import EdgeError

    try:
        cfg = _load(args)
        validate_devices(cfg)
        ident = identity.load(cfg.identity_dir)
    except EdgeError as exc:
        return _fail(exc)
    print(f"{cfg.path}: OK")
    for warning in cfg.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"  hub {ident.hub_id}, key ed25519:{ident.public_hex}, data in {cfg.data_dir}")
    print(f"  sync: {cfg.sync.url or 'disabled (export by hand)'}; retention {cfg.sync.retention_days:g} days")
    print(f"  mqtt: {f'{cfg.mqtt.host}:{cfg.mqtt.port}' if cfg.mqtt else 'disabled'}; "
          f"status API {cfg.web_bind}:{cfg.web_port}; language {cfg.language}")
    for s in cfg.stations:
        print(f"  station {s.id} ({s.name}), session window {s.session_window_s:g} s")
        for d in s.devices:
            where = d.address or (f"port {d.port}" if d.port else "")
            print(f"    device {d.id}: {d.driver} {d.transport or ''} {where} {d.dialect or ''}".rstrip())
    return 0


def _run(args: argparse.Namespace) -> int:
    from edge.daemon import Hub
    from edge.errors import EdgeError

    try:
        cfg = _load(args)
        hub = Hub(cfg)
        asyncio.run(hub.run())
    except EdgeError as exc:
        return _fail(exc)
    if hub.failure is not None:  # not a requested stop: exit non-zero so the service manager logs a failure
        print(f"错误 / error: 网关因内部故障停止，服务管理器会重新启动它 / the hub stopped on a fault "
              f"({hub.failure}); the service manager restarts it", file=sys.stderr)
        return 1
    return 0


def _status(args: argparse.Namespace) -> int:
    import urllib.request

    from edge import identity
    from edge.errors import EdgeError
    from edge.status import render, store_snapshot
    from edge.store.reader import Reader

    try:
        cfg = _load(args)
        if not cfg.db_path.exists():
            return _fail(Exception(f"网关尚未运行过 / {cfg.db_path} does not exist yet: the hub has never run; start "
                                   f"it: sudo systemctl start mchub-edge (or mchub edge run --config {args.config})"))
        host = "127.0.0.1" if cfg.web_bind in ("0.0.0.0", "::") else cfg.web_bind
        from edge.web.auth import read_console_token

        token = read_console_token(cfg.data_dir)
        request = urllib.request.Request(f"http://{host}:{cfg.web_port}/api/status",
                                         headers={"Authorization": f"Bearer {token}"})
        try:
            if token is None:
                raise OSError("no console token: the hub is not running or this user may not read it")
            with urllib.request.urlopen(request, timeout=3) as resp:  # noqa: S310 - http:// built above
                snap = json.loads(resp.read())
        except (OSError, ValueError):
            reader = Reader(cfg.db_path, identity.load(cfg.identity_dir).decrypt)
            snap = store_snapshot(reader, cfg.data_dir)
            reader.close()
    except EdgeError as exc:
        return _fail(exc)
    print(json.dumps(snap, indent=2, ensure_ascii=False) if args.json else render(snap, cfg.language,
                                                                                 station_names(cfg)))
    return 0


def station_names(cfg: Any) -> dict[str, str]:
    """Station id -> the name people use (``一诊室``); the id where the station has no name."""
    return {s.id: s.name or s.id for s in cfg.stations}


def _console_call(cfg: Any, method: str, path: str, doc: dict[str, Any] | None = None) -> Any:
    """Call the running hub's JSON API with the console token; raises OSError when it does not answer."""
    import urllib.error
    import urllib.request

    from edge.web.auth import read_console_token

    token = read_console_token(cfg.data_dir)
    if token is None:
        raise OSError("no console token: the hub is not running or this user may not read it")
    host = "127.0.0.1" if cfg.web_bind in ("0.0.0.0", "::") else cfg.web_bind
    data = None if doc is None else json.dumps(doc).encode()
    request = urllib.request.Request(f"http://{host}:{cfg.web_port}{path}", data=data, method=method,
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - http:// built above
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", str(exc))
        except ValueError:
            message = str(exc)
        raise ValueError(message) from None


def _dead_letters(args: argparse.Namespace) -> int:
    from edge import identity
    from edge.errors import EdgeError
    from edge.store.reader import Reader
    from edge.web import LOCALES
    from webui.i18n import catalog

    try:
        cfg = _load(args)
        if args.action == "list":
            try:
                rows = _console_call(cfg, "GET", "/api/dead-letters" + ("?all=1" if args.all else ""))
            except OSError:  # the hub is stopped: read hub.db
                if not cfg.db_path.exists():
                    return _fail(Exception(f"网关尚未运行过 / {cfg.db_path} does not exist yet: the hub has never "
                                           f"run; start it: sudo systemctl start mchub-edge"))
                reader = Reader(cfg.db_path, identity.load(cfg.identity_dir).decrypt, readonly=True)
                rows = reader.dead_letters(open_only=not args.all)
                reader.close()
            if args.json:
                print(json.dumps(rows, indent=2, ensure_ascii=False))
                return 0
            if not rows:
                print("没有被拒收的记录 / no refused records")
            names = station_names(cfg)
            for d in rows:
                where = names.get(d["station_id"], d["station_id"] or "-")
                values = ", ".join(f"{o['code']} {o['value']:g} {o['unit']}" for o in d["observations"])
                done = (f"  -> 已重发 / resent as seq {d['resent_seq']}" if d["resent_seq"] else
                        f"  -> 已忽略 / dismissed by {d['resolved_by']}" if d["resolved_at"] else "")
                meaning = " / ".join(dict.fromkeys(catalog(LOCALES).t("deadletter.reason." + d["reason"], lang)
                                                   for lang in ("zh-CN", "en")))
                print(f"seq {d['seq']:<8} {d['type']:<15} {where:<12} {d['device_id'] or '-':<12} "
                      f"{d['reason']}: {meaning}"
                      f"{'  [' + values + ']' if values else ''}{done}")
            return 0
        if args.seq is None:
            return _fail(Exception(f"缺少记录序号 / dead-letters {args.action} needs the record's seq: find it with "
                                   f"mchub edge dead-letters list --config {args.config}"))
        if args.action == "resend":
            out = _console_call(cfg, "POST", f"/api/dead-letters/{args.seq}/resend",
                                {"drop_codes": args.drop, "by": args.by})
            print(f"已重发为新读数 / refused record {args.seq} resent as seq {out['seq']}")
        else:
            _console_call(cfg, "POST", f"/api/dead-letters/{args.seq}/dismiss", {"by": args.by})
            print(f"已忽略 / refused record {args.seq} dismissed (kept on the hub, not sent again)")
    except OSError as exc:
        return _fail(Exception(f"网关没有响应 / the hub does not answer ({exc}); resend and dismiss need the running "
                               f"hub: sudo systemctl start mchub-edge, then run this again"))
    except (EdgeError, ValueError) as exc:
        return _fail(exc)
    return 0


def _hash(args: argparse.Namespace) -> int:
    import getpass

    from edge.staff_secrets import secret_problem, write_secret_file
    from provisioning.auth import hash_password

    if sys.stdin.isatty():
        secret = getpass.getpass("PIN or password: ")
        if getpass.getpass("again: ") != secret:
            return _fail(Exception("两次输入不一致，请重新运行 / the two entries differ; run it again"))
    else:
        secret = sys.stdin.readline().rstrip("\n")
    problem = secret_problem(secret)
    if problem:
        return _fail(Exception(problem))
    if args.out is None:
        print(hash_password(secret))
        return 0
    try:
        write_secret_file(args.out, hash_password(secret))
    except OSError as exc:
        return _fail(exc)
    print(f"wrote {args.out} (mode 0600); in hub.toml: secret_file = \"{args.out}\"")
    return 0


def _move_secrets(args: argparse.Namespace) -> int:
    from edge.errors import EdgeError
    from edge.staff_secrets import move_inline_hashes

    try:
        moved = move_inline_hashes(args.config)
    except (EdgeError, OSError) as exc:
        return _fail(exc)
    for path in moved:
        print(f"wrote {path} (mode 0600)")
    print(f"{args.config}: {len(moved)} PIN hash(es) moved to secret files" if moved
          else f"{args.config}: no inline secret_hash left")
    return 0


def _export(args: argparse.Namespace) -> int:
    import sqlite3

    from edge import identity
    from edge.errors import EdgeError
    from edge.export import export, seq_since
    from edge.store.reader import Reader

    try:
        cfg = _load(args)
        ident = identity.load(cfg.identity_dir)
        reader = Reader(args.from_db or cfg.db_path, ident.decrypt, readonly=bool(args.from_db))
        since = seq_since(reader, args.since) if args.since else None
        done = export(reader, ident, args.out, since)
        reader.close()
    except (EdgeError, ValueError, sqlite3.DatabaseError) as exc:
        return _fail(exc)
    if done.problem:
        print(f"warning: the database is damaged; {done.problem}", file=sys.stderr)
    if not done.batches:
        print("没有需要导出的记录：云端已确认全部记录 / nothing to export: the cloud has acknowledged every record")
        return 0
    print(f"wrote records {done.first}..{done.last} ({done.last - done.first + 1}) in {done.batches} "
          f"sealed batch(es) to {args.out}")
    return 0


def _backup(args: argparse.Namespace) -> int:
    from edge.backup import backup
    from edge.errors import EdgeError

    try:
        done = backup(_load(args).db_path, args.out)
    except EdgeError as exc:
        return _fail(exc)
    print(f"wrote {args.out} ({done.size} bytes): hub {done.hub_id}, epoch {done.epoch:x}, "
          f"records up to seq {done.next_seq - 1}, cloud acknowledged through {done.acked_through}")
    print("keep the identity directory backed up too (once; it changes only on rotate-key)")
    return 0


def _restore(args: argparse.Namespace) -> int:
    import urllib.error
    import urllib.request

    from edge import identity
    from edge.backup import restore
    from edge.errors import EdgeError

    try:
        cfg = _load(args)
        host = "127.0.0.1" if cfg.web_bind in ("0.0.0.0", "::") else cfg.web_bind
        running = True
        try:
            with urllib.request.urlopen(f"http://{host}:{cfg.web_port}/api/status", timeout=2):
                pass
        except urllib.error.HTTPError:
            pass  # it answers (e.g. 401 without the console token): it runs
        except OSError:
            running = False
        if running:
            return _fail(Exception("网关正在运行，请先停止 / the hub is running: stop it first "
                                   "(sudo systemctl stop mchub-edge), then run this again"))
        done = restore(cfg.data_dir, identity.load(cfg.identity_dir), args.source, cfg.sync.url)
    except EdgeError as exc:
        return _fail(exc)
    print(f"restored {args.source} as {cfg.db_path}: new epoch {done.new_epoch:x} (was {done.old_epoch:x})")
    if done.replaced:
        print(f"the previous hub.db is in {done.replaced}; if it holds records taken after the backup, "
              f"run: mchub edge export --config {args.config} --from-db {done.replaced} --out FILE")
    if done.exported:
        print(f"records {done.first}..{done.last} of the backup were not acknowledged by the cloud when it was "
              f"taken; they are in {done.exported} under their original epoch")
        print(f"  upload: {done.uploaded}" if done.uploaded else
              f"  bring them to the cloud: mchub cloud import {done.exported.name}")
    print("start the hub again: sudo systemctl start mchub-edge")
    return 0
