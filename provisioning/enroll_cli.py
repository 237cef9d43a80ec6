"""``mchub edge enroll`` and ``mchub edge rotate-key``, ready for ``edge/cli.py`` to mount.

``edge/cli.py`` adds them with two lines::

    from provisioning.enroll_cli import add_enroll_commands
    add_enroll_commands(subparsers)   # the edge command's add_subparsers() object

Both are blocking and need no running daemon. The hub's serial number is read from the
Raspberry Pi device tree (``/proc/device-tree/serial-number``), else from
``/etc/machine-id``; ``--serial`` overrides.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

DEFAULT_STATE_DIR = "/var/lib/mchub/hub"
SERIAL_SOURCES = ("/proc/device-tree/serial-number", "/sys/firmware/devicetree/base/serial-number", "/etc/machine-id")


def _t(zh: str, en: str) -> str:
    lang = os.environ.get("MCHUB_LANG", os.environ.get("LANG", "")).lower()
    return en if lang.startswith("en") else f"{zh} / {en}"


def hardware_serial(sources: tuple[str, ...] = SERIAL_SOURCES) -> str | None:
    """The board's serial number (printable characters only), or None."""
    for source in sources:
        try:
            text = Path(source).read_bytes().decode("ascii", "ignore").strip("\x00 \n")
        except OSError:
            continue
        cleaned = "".join(c for c in text if c.isalnum() or c in "._:-")[:64]
        if cleaned:
            return cleaned
    return None


def add_enroll_commands(sub: Any) -> None:
    """Add ``enroll`` and ``rotate-key`` to an ``add_subparsers()`` object."""
    p = sub.add_parser("enroll", help="用一次性令牌注册网关 / enroll this hub with the cloud using a one-time token",
                       description="在本机生成网关密钥（不离开网关），用令牌申请证书，校验后存入 --state-dir (0600)；"
                                   "同一令牌可重复运行。 / "
                                   "Generates this hub's key here (it never leaves the hub), sends a certificate "
                                   "request with the token, checks the answer and stores it in --state-dir (0600). "
                                   "Safe to run again with the same token.")
    p.add_argument("--cloud", required=True, help="云端地址 / cloud base URL, e.g. https://cloud.example.org")
    p.add_argument("--token", required=True, help="注册令牌 / the token from `mchub provision token create`")
    p.add_argument("--state-dir", type=Path, default=Path(DEFAULT_STATE_DIR),
                   help=f"状态目录 / where the hub's key and certificate go (`mchub edge`: hub.toml's identity_dir; "
                        f"else {DEFAULT_STATE_DIR})")
    p.add_argument("--serial", help="硬件序列号 / hardware serial (default: read from the board)")
    p.add_argument("--site", help="机构编号 / the site this hub is installed at; refused if the token is for another")
    p.add_argument("--ca-fingerprint",
                   help="机队 CA 指纹 / SHA-256 of the fleet CA (from `mchub provision ca show`) to pin")
    p.add_argument("--cacert", help="信任的 CA 文件 / CA file to trust for the cloud's HTTPS certificate")
    p.set_defaults(func=run_enroll)
    help_ = ("更换密钥 / replace this hub's key and certificate now (the cloud keeps the old key valid for an "
             "overlap)")
    p = sub.add_parser("rotate-key", help=help_, description=help_)
    p.add_argument("--state-dir", type=Path, default=Path(DEFAULT_STATE_DIR),
                   help=f"状态目录 / the enrollment's directory (default {DEFAULT_STATE_DIR})")
    p.add_argument("--cacert", help="信任的 CA 文件 / CA file to trust for the cloud's HTTPS certificate")
    p.set_defaults(func=run_rotate)


def _software() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"mchub {version('mchub')}"
    except PackageNotFoundError:
        return "mchub"


def _fail(exc: Exception) -> int:
    print(f"{_t('失败', 'failed')}: {exc}", file=sys.stderr)
    return 1


def run_enroll(args: argparse.Namespace) -> int:
    """Handler of ``mchub edge enroll``."""
    from provisioning import hubside
    from provisioning.errors import ProvisioningError

    serial = args.serial or hardware_serial()
    if not serial:
        print(_t("读不到设备序列号，请用 --serial 指定", "cannot read this board's serial; give --serial"),
              file=sys.stderr)
        return 2
    try:
        state = hubside.enroll(args.cloud, args.token, args.state_dir, hub_serial=serial, site_id=args.site,
                               ca_fingerprint=args.ca_fingerprint, cafile=args.cacert, software=_software())
    except (ProvisioningError, OSError) as exc:
        return _fail(exc)
    expires = dt.datetime.fromtimestamp(state.verified.not_after_ms / 1000).astimezone().strftime("%Y-%m-%d %H:%M")
    devices = sum(len(s.devices) for s in state.config.stations)
    print(f"{_t('注册成功', 'enrolled')}: {state.identity.hub_id} ({_t('机构', 'site')} {state.identity.site_id}, "
          f"{state.config.site_name})")
    print(f"{_t('证书有效至', 'certificate valid until')} {expires}; {_t('设备', 'devices')} {devices}; "
          f"{_t('状态目录', 'state')} {args.state_dir}")
    return 0


def run_rotate(args: argparse.Namespace) -> int:
    """Handler of ``mchub edge rotate-key``."""
    from provisioning import hubside
    from provisioning.errors import ProvisioningError

    try:
        identity = hubside.rotate(args.state_dir, cafile=args.cacert)
    except (ProvisioningError, OSError) as exc:
        return _fail(exc)
    until = dt.datetime.fromtimestamp(identity.not_after_ms / 1000).astimezone().strftime("%Y-%m-%d %H:%M")
    print(f"{_t('密钥已更换', 'key rotated')}: {identity.hub_id}, {_t('新证书有效至', 'new certificate valid until')} "
          f"{until}")
    return 0
