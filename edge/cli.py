"""``mchub edge``: 诊所网关 / the clinic hub's commands. Help and messages are Chinese first, then English.

    mchub edge init --hub-id H --cloud-key cloud.json [--config hub.toml]   create the identity (by hand)
    mchub edge enroll --cloud URL --token T [--config hub.toml]            or: enroll with a one-time token
    mchub edge check-config --config hub.toml                               validate, print a summary
    mchub edge run --config hub.toml                                        the daemon
    mchub edge status --config hub.toml [--json]                            what the hub is doing
    mchub edge export --config hub.toml --out FILE [--since SEQ|DATE]       hand-carry unsynced records
    mchub edge backup --config hub.toml --out FILE                          consistent copy of hub.db
    mchub edge restore --config hub.toml --from FILE                        restore a backup (new epoch)
    mchub edge hash-password                                                hash a staff PIN/password for hub.toml
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
    sub.add_parser("hash-password", help="口令哈希 / hash a staff PIN or password for [[web.users]] secret_hash in "
                                         "hub.toml",
                   description="读取两次 PIN 或口令（不回显；或从管道读一行），输出 scrypt 哈希，填入 secret_hash。 / "
                               "Reads the PIN or password twice (not echoed; or one line from a pipe) and "
                               "prints the scrypt hash to paste as secret_hash.").set_defaults(func=_hash)

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
    from edge.errors import EdgeError
    from edge.plugins import validate_devices

    try:
        cfg = _load(args)
        validate_devices(cfg)
        ident = identity.load(cfg.identity_dir)
    except EdgeError as exc:
        return _fail(exc)
    print(f"{cfg.path}: OK")
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
        asyncio.run(Hub(cfg).run())
    except EdgeError as exc:
        return _fail(exc)
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
    print(json.dumps(snap, indent=2, ensure_ascii=False) if args.json else render(snap, cfg.language))
    return 0


def _hash(_args: argparse.Namespace) -> int:
    import getpass

    from provisioning.auth import hash_password

    if sys.stdin.isatty():
        secret = getpass.getpass("PIN or password: ")
        if getpass.getpass("again: ") != secret:
            return _fail(Exception("两次输入不一致，请重新运行 / the two entries differ; run it again"))
    else:
        secret = sys.stdin.readline().rstrip("\n")
    if len(secret) < 4:
        return _fail(Exception("至少 4 个字符（6 位 PIN 或口令）/ use at least 4 characters (a 6-digit PIN or a "
                               "password); run it again"))
    print(hash_password(secret))
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
