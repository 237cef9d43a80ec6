"""``mchub provision``: fleet CA (local files) and sites, tokens, hubs, devices (admin API client).

``ca init`` / ``ca show`` work on a CA directory on this machine. Every other command is
a client of the cloud's admin API (docs/admin-api.md): sign in once with ``login``
(password + one-time code); the session is kept in ``~/.config/mchub/admin-session.json``
(mode 0600, 8 hours). Messages are Chinese first, then English; set ``MCHUB_LANG=en``
for English-only tables.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import os
import sys
import unicodedata
import urllib.parse
from pathlib import Path
from typing import Any

EPILOG = """\
examples / 示例:
  mchub provision ca init --dir /etc/mchub/ca              create the fleet CA (asks for a passphrase)
  mchub provision ca show --dir /etc/mchub/ca              fingerprint and validity
  mchub provision login --cloud https://cloud.example.org --user alice
  mchub provision site add dongcheng --name 东城社区卫生服务中心
  mchub provision token create --site dongcheng --expires 24h
  mchub provision hub list
  mchub provision device add --hub dongcheng-h01 --station 1 --kind ble-bp --address AA:BB:CC:DD:EE:FF
  mchub provision hub rotate dongcheng-h01                  new key now (old one valid for the overlap)
  mchub provision hub revoke dongcheng-h01 --reason "设备丢失"

On the hub:  mchub edge enroll --cloud https://cloud.example.org --token XXXXX-XXXXX-XXXXX-XXXXX-XXXXX
API contract: docs/admin-api.md
"""


def _en() -> bool:
    return os.environ.get("MCHUB_LANG", os.environ.get("LANG", "")).lower().startswith("en")


def _t(zh: str, en: str) -> str:
    return en if _en() else f"{zh} / {en}"


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000).astimezone().strftime("%Y-%m-%d %H:%M")


def _session_path(args: argparse.Namespace) -> Path:
    if args.session_file:
        return Path(args.session_file)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "mchub" / "admin-session.json"


def _read_secret_file(path: str) -> str:
    return Path(path).read_text(encoding="utf-8").splitlines()[0] if Path(path).stat().st_size else ""


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``provision`` subcommands."""
    parser.epilog = EPILOG
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--session-file",
                        help="登录会话文件 / where `login` keeps the admin session (default ~/.config/mchub/)")
    common.add_argument("--cloud", help="云端地址 / cloud base URL (default: the one you logged in to)")
    common.add_argument("--cacert", help="信任的 CA 文件 / CA file to trust for the cloud's HTTPS certificate")
    common.add_argument("--json", action="store_true", help="输出 JSON / print machine-readable JSON")

    def leaf(sub: Any, name: str, help_: str) -> argparse.ArgumentParser:
        made: argparse.ArgumentParser = sub.add_parser(name, help=help_, description=help_, parents=[common])
        return made

    groups = parser.add_subparsers(dest="group", metavar="GROUP")

    def _group(parent: Any, name: str, help_: str) -> Any:
        return parent.add_parser(name, help=help_, description=help_).add_subparsers(dest="action", metavar="ACTION")

    ca = _group(groups, "ca", "机队 CA / fleet certificate authority (local files)")
    p = leaf(ca, "init", "创建机队 CA / create the fleet CA: Ed25519 key encrypted with a passphrase, 10-year cert")
    p.add_argument("--dir", required=True, type=Path, help="要创建的目录 / directory to create (0700; files 0600)")
    p.add_argument("--name", default="mchub fleet CA", help="CA 名称 / CA common name")
    p.add_argument("--passphrase-file",
                   help="口令文件 / read the passphrase from this file (first line) instead of asking")
    p.set_defaults(func=_guarded(_ca_init))
    p = leaf(ca, "show", "查看 CA / print the CA's subject, SHA-256 fingerprint and validity")
    p.add_argument("--dir", required=True, type=Path, help="CA 目录 / the CA directory")
    p.set_defaults(func=_guarded(_ca_show))

    p = leaf(groups, "login", "登录 / sign in to the admin API (password + 6-digit code)")
    p.add_argument("--user", required=True, help="用户名 / user name")
    p.add_argument("--password-file", help="密码文件 / read the password from a file instead of asking")
    p.add_argument("--code", help="动态码 / the 6-digit code from the authenticator app (asked if omitted)")
    p.set_defaults(func=_guarded(_login))
    leaf(groups, "logout", "退出登录 / forget the stored admin session").set_defaults(func=_guarded(_logout))

    site = _group(groups, "site", "机构 / sites (clinics)")
    p = leaf(site, "add", "添加机构 / register a site; its hubs will be named <site>-h01, -h02 ...")
    p.add_argument("site_id", help="机构编号，小写 / short id, 1-40 of a-z 0-9 _ - (e.g. dongcheng)")
    p.add_argument("--name", required=True, help="机构名称 / display name, e.g. 东城社区卫生服务中心")
    p.set_defaults(func=_guarded(_site_add))
    leaf(site, "list", "机构列表 / every site").set_defaults(func=_guarded(_site_list))

    token = _group(groups, "token", "注册令牌 / one-time enrollment tokens")
    p = leaf(token, "create", "生成令牌 / mint a token for one hub at a site (shown once, stored as a hash)")
    p.add_argument("--site", required=True, help="机构编号 / site id")
    p.add_argument("--expires", default="24h", help="有效期 / lifetime: 90m, 24h, 7d (max 30d; default 24h)")
    p.add_argument("--serial", help="硬件序列号 / only the hub with this hardware serial may use it")
    p.set_defaults(func=_guarded(_token_create))

    hub = _group(groups, "hub", "网关 / enrolled hubs")
    p = leaf(hub, "list", "网关列表 / every hub: site, status, certificate expiry, last seen")
    p.set_defaults(func=_guarded(_hub_list))
    p = leaf(hub, "revoke", "吊销网关 / take a hub out of service now (its data already received is kept)")
    p.add_argument("hub_id", help="网关编号 / hub id")
    p.add_argument("--reason", required=True, help="原因，记入审计日志 / recorded in the audit log")
    p.set_defaults(func=_guarded(_hub_revoke))
    p = leaf(hub, "rotate", "更换网关密钥 / ask a hub to rotate its key now (rotate-key command over MQTT; the "
                            "old key stays valid for the overlap)")
    p.add_argument("hub_id", help="网关编号 / hub id")
    p.set_defaults(func=_guarded(_hub_rotate))

    dev = _group(groups, "device", "设备 / devices on hub stations")
    p = leaf(dev, "add", "添加设备 / register a device; the hub applies it without restarting")
    p.add_argument("--hub", required=True, help="网关编号 / hub id")
    p.add_argument("--station", required=True, type=int, help="测量台编号 / station number on that hub, 1-99")
    p.add_argument("--kind", required=True, help="设备类型 / driver kind, e.g. ble-bp (see `mchub decode --list`)")
    p.add_argument("--address", required=True, help="地址 / BLE MAC, serial device (/dev/ttyUSB0) or host")
    p.add_argument("--transport", choices=["ble", "serial", "tcp", "modbus-rtu", "modbus-tcp"],
                   help="连接方式 / default: from the kind's prefix (ble-bp -> ble)")
    p.add_argument("--port", type=int, help="端口 / TCP port, or Modbus unit id for modbus-rtu")
    p.add_argument("--dialect", help="协议变体 / vendor variant of the protocol")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="驱动选项（可重复）/ driver option (repeatable)")
    p.add_argument("--label", default="", help="显示名称 / name shown on the status page, e.g. 诊室2 血压计")
    p.add_argument("--id", dest="device_id", help="设备编号 / device id (default s<station>-<kind>)")
    p.set_defaults(func=_guarded(_device_add))
    p = leaf(dev, "list", "设备列表 / devices of one hub and its configuration version")
    p.add_argument("--hub", required=True, help="网关编号 / hub id")
    p.set_defaults(func=_guarded(_device_list))
    p = leaf(dev, "remove", "移除设备 / unregister a device")
    p.add_argument("--hub", required=True, help="网关编号 / hub id")
    p.add_argument("device_id", help="设备编号 / device id")
    p.set_defaults(func=_guarded(_device_remove))

    p = leaf(groups, "audit", "审计日志 / the audit log (who did what, when)")
    p.add_argument("--target", help="只看此网关、机构或令牌 / only entries about this hub, site or token id")
    p.add_argument("--limit", type=int, default=50, help="条数 / how many entries (default 50)")
    p.set_defaults(func=_guarded(_audit))
    parser.set_defaults(func=_guarded(None))


def _guarded(func: Any) -> Any:
    """Run a handler; turn provisioning errors into one readable line and exit code 1."""

    def run(args: argparse.Namespace) -> int:
        from provisioning.errors import ProvisioningError

        handler = func
        if handler is None:
            print(_t("请指定子命令", "choose a command") + " — mchub provision --help", file=sys.stderr)
            return 2
        try:
            result: int = handler(args)
            return result
        except ProvisioningError as exc:
            print(f"{_t('错误', 'error')}: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"{_t('错误', 'error')}: {exc}", file=sys.stderr)
            return 1

    return run


def _client(args: argparse.Namespace) -> Any:
    from provisioning.client import HttpClient
    from provisioning.errors import ClientError

    path = _session_path(args)
    session: dict[str, Any] = {}
    if path.exists():
        session = json.loads(path.read_text(encoding="utf-8"))
    bearer = os.environ.get("MCHUB_ADMIN_TOKEN") or session.get("token")
    cloud = args.cloud or session.get("cloud")
    if not cloud or not bearer:
        raise ClientError(_t("尚未登录", "not signed in") + ": mchub provision login --cloud URL --user NAME")
    return HttpClient(cloud, bearer=bearer, cafile=args.cacert)


def _print(args: argparse.Namespace, value: Any, text: str) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2) if args.json else text)


def _width(text: str) -> int:
    """Columns a string takes in a terminal (Chinese characters take two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _table(rows: list[list[str]]) -> str:
    widths = [max(_width(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c + " " * (w - _width(c)) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


# --- local CA ------------------------------------------------------------------------------


def _ca_init(args: argparse.Namespace) -> int:
    from protocol.ids import now_ms
    from provisioning.ca import FleetCA, fingerprint

    if args.passphrase_file:
        passphrase = _read_secret_file(args.passphrase_file)
    else:
        passphrase = getpass.getpass(_t("CA 口令", "CA passphrase") + ": ")
        if getpass.getpass(_t("再输入一次", "again") + ": ") != passphrase:
            print(_t("两次输入不一致", "the passphrases differ"), file=sys.stderr)
            return 1
    ca = FleetCA.create(args.name, now_ms=now_ms())
    ca.save(args.dir, passphrase.encode())
    print(_t("已创建机队 CA", "fleet CA created") + f": {args.dir}")
    print(f"SHA-256 {fingerprint(ca.cert)}")
    print(_t("请妥善保管口令；丢失后无法签发证书", "keep the passphrase safe: without it no hub can be enrolled"))
    return 0


def _ca_show(args: argparse.Namespace) -> int:
    from provisioning.ca import CERT_FILE, fingerprint, load_certificate

    cert = load_certificate((args.dir / CERT_FILE).read_bytes())
    info = {
        "subject": cert.subject.rfc4514_string(),
        "fingerprint_sha256": fingerprint(cert),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "key": "Ed25519",
    }
    _print(args, info, "\n".join(f"{k:20} {v}" for k, v in info.items()))
    return 0


# --- admin API -----------------------------------------------------------------------------


def _login(args: argparse.Namespace) -> int:
    from provisioning.client import HttpClient
    from provisioning.errors import ClientError
    from provisioning.keyfiles import write_private_file

    if not args.cloud:
        raise ClientError("login needs --cloud https://... (the cloud's base URL)")
    password = _read_secret_file(args.password_file) if args.password_file else getpass.getpass(
        _t("密码", "password") + ": ")
    code = args.code or input(_t("动态码", "6-digit code") + ": ")
    answer = HttpClient(args.cloud, cafile=args.cacert).request(
        "POST", "/api/v1/admin/login", {"username": args.user, "password": password, "code": code})
    path = _session_path(args)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    doc = {"cloud": args.cloud, "token": answer["token"], "expires_ms": answer["expires_ms"],
           "username": answer["username"], "role": answer["role"]}
    write_private_file(path, json.dumps(doc).encode(), overwrite=True)
    print(_t("已登录", "signed in") + f": {answer['username']} ({answer['role']}), "
          + _t("有效至", "until") + f" {_when(answer['expires_ms'])}")
    return 0


def _logout(args: argparse.Namespace) -> int:
    _session_path(args).unlink(missing_ok=True)
    print(_t("已退出", "signed out"))
    return 0


def _site_add(args: argparse.Namespace) -> int:
    from provisioning.admin import check_site_id

    check_site_id(args.site_id)  # the server checks the same rule; this answers before signing in
    site = _client(args).request("POST", "/api/v1/admin/sites", {"site_id": args.site_id, "name": args.name})
    _print(args, site, _t("已添加机构", "site added") + f": {site['site_id']} {site['name']}")
    return 0


def _site_list(args: argparse.Namespace) -> int:
    sites = _client(args).request("GET", "/api/v1/admin/sites")["sites"]
    rows = [[_t("机构", "SITE"), _t("名称", "NAME")]] + [[s["site_id"], s["name"]] for s in sites]
    _print(args, sites, _table(rows) if sites else _t("还没有机构", "no sites yet") + ": mchub provision site add "
           "SITE_ID --name NAME")
    return 0


def _token_create(args: argparse.Namespace) -> int:
    from provisioning.tokens import parse_duration

    body = {"site_id": args.site, "expires_in_s": parse_duration(args.expires) // 1000, "hub_serial": args.serial}
    got = _client(args).request("POST", "/api/v1/admin/tokens", body)
    cloud = _client(args).base
    text = (
        f"{_t('注册令牌', 'enrollment token')} ({_t('机构', 'site')} {got['site_id']}, "
        f"{_t('有效至', 'expires')} {_when(got['expires_ms'])}, {_t('仅可使用一次', 'one use')}):\n\n"
        f"    {got['token']}\n\n"
        f"{_t('在网关上运行', 'on the hub run')}:\n"
        f"    mchub edge enroll --cloud {cloud} --token {got['token']}\n\n"
        f"{_t('令牌只显示这一次，云端只保存其哈希', 'shown only now; the cloud keeps only its hash')}"
    )
    _print(args, got, text)
    return 0


def _hub_list(args: argparse.Namespace) -> int:
    hubs = _client(args).request("GET", "/api/v1/admin/hubs")["hubs"]
    head = [_t("网关", "HUB"), _t("机构", "SITE"), _t("状态", "STATUS"), _t("证书到期", "CERT EXPIRES"),
            _t("最后在线", "LAST SEEN"), _t("密钥", "KEYS")]
    rows = [head] + [[h["hub_id"], h["site_id"], h["status"], _when(h["cert_expires_ms"]), _when(h["last_seen_ms"]),
                      str(h["keys"])] for h in hubs]
    none = _t("还没有登记的网关", "no hubs enrolled yet") + ": mchub provision token create --site SITE"
    _print(args, hubs, _table(rows) if hubs else none)
    return 0


def _hub_revoke(args: argparse.Namespace) -> int:
    path = f"/api/v1/admin/hubs/{urllib.parse.quote(args.hub_id)}/revoke"
    row = _client(args).request("POST", path, {"reason": args.reason})
    done = _t("已吊销，该网关的后续请求将被拒绝", "revoked: every further request from this hub is refused")
    _print(args, row, f"{done}: {row['hub_id']}")
    return 0


def _hub_rotate(args: argparse.Namespace) -> int:
    got = _client(args).request("POST", f"/api/v1/admin/hubs/{urllib.parse.quote(args.hub_id)}/rotate")
    how = _t("已通知网关", "the hub was told") if got["pushed"] else _t(
        "无法推送（MQTT 未连接），网关将在证书到期前自行更换", "could not push (no MQTT); the hub rotates on its own "
        "before its certificate expires, or run `mchub edge rotate-key` on it")
    _print(args, got, f"{_t('已请求更换密钥', 'key rotation requested')}: {args.hub_id} ({how})")
    return 0


def _option(text: str) -> tuple[str, Any]:
    from provisioning.errors import InventoryError

    key, sep, value = text.partition("=")
    if not sep:
        raise InventoryError(f"--option {text!r}: write KEY=VALUE, e.g. --option baud=9600")
    try:
        return key, json.loads(value)  # 9600 -> int, true -> bool, "x" stays text
    except ValueError:
        return key, value


def _device_add(args: argparse.Namespace) -> int:
    body = {"station": args.station, "kind": args.kind, "address": args.address, "transport": args.transport,
            "port": args.port, "dialect": args.dialect, "options": dict(map(_option, args.option)),
            "label": args.label, "device_id": args.device_id}
    got = _client(args).request("POST", f"/api/v1/admin/hubs/{urllib.parse.quote(args.hub)}/devices", body)
    how = _t("已推送到网关", "pushed to the hub") if got["pushed"] else _t(
        "网关下次同步时获取", "the hub picks it up at its next sync")
    _print(args, got, f"{_t('已添加设备', 'device added')}: {got['device']['device_id']} "
           f"({_t('配置版本', 'config version')} {got['version']}; {how})")
    return 0


def _device_list(args: argparse.Namespace) -> int:
    got = _client(args).request("GET", f"/api/v1/admin/hubs/{urllib.parse.quote(args.hub)}/devices")
    head = [_t("设备", "DEVICE"), _t("测量台", "STATION"), _t("类型", "KIND"), _t("地址", "ADDRESS"),
            _t("名称", "LABEL")]
    rows = [head] + [[d["device_id"], str(d["station"]), d["kind"], d["address"] + (f":{d['port']}" if d.get("port")
                      else ""), d.get("label", "")] for d in got["devices"]]
    listing = _table(rows) if got["devices"] else _t("此网关没有设备", "no devices on this hub") + (
        f": mchub provision device add --hub {args.hub} --station 1 --kind KIND --address ADDRESS")
    _print(args, got, listing + f"\n{_t('配置版本', 'config version')} {got['version']}")
    return 0


def _device_remove(args: argparse.Namespace) -> int:
    path = f"/api/v1/admin/hubs/{urllib.parse.quote(args.hub)}/devices/{urllib.parse.quote(args.device_id)}"
    got = _client(args).request("DELETE", path)
    _print(args, got, _t("已移除", "removed") + f": {args.device_id} ({_t('配置版本', 'config version')} "
           f"{got['version']})")
    return 0


def _audit(args: argparse.Namespace) -> int:
    query = urllib.parse.urlencode({k: v for k, v in (("target", args.target), ("limit", args.limit)) if v})
    entries = _client(args).request("GET", f"/api/v1/admin/audit?{query}")["entries"]
    rows = [[_t("时间", "TIME"), _t("操作者", "ACTOR"), _t("操作", "ACTION"), _t("对象", "TARGET"),
             _t("详情", "DETAIL")]]
    rows += [[_when(e["at_ms"]), e["actor"], e["action"], e["target"],
              " ".join(f"{k}={v}" for k, v in sorted(e.get("detail", {}).items()))] for e in entries]
    _print(args, entries, _table(rows) if entries else _t("没有审计记录", "no audit entries"))
    return 0
