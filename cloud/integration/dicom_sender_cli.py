"""DICOM 发送方凭据 / ``mchub cloud dicom-sender``: credentials of the systems that send DICOM by STOW-RS.

    mchub cloud dicom-sender add PACS1 --note "radiology PACS"   # prints the token once
    mchub cloud dicom-sender list
    mchub cloud dicom-sender revoke PACS1                        # refused from its next request

The sender then authenticates with HTTP Basic (user ``PACS1``, password = the token) or
``Authorization: Bearer <token>``. Changes are audited with the operating-system user as
the actor (``cli:<login>``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


async def _add(cfg: Any, args: argparse.Namespace) -> int:
    from cloud.integration.dicom_senders import add_sender
    from cloud.users.cli import _actor, _with_db

    async def go(db: Any) -> int:
        sender, token = await add_sender(db, args.name, actor=_actor(), note=args.note)
        print(f"DICOM 发送方已创建 / DICOM sender {sender.name} created. Token (shown once; store it in the "
              "sender's STOW-RS settings):")
        print(f"  {token}")
        print(f"  HTTP Basic: user {sender.name}, password = the token; or Authorization: Bearer <token>")
        return 0

    return await _with_db(cfg, go)


async def _list(cfg: Any, args: argparse.Namespace) -> int:
    from cloud.integration.dicom_senders import list_senders
    from cloud.users.cli import _when, _with_db

    async def go(db: Any) -> int:
        rows = await list_senders(db)
        print(f"{'sender':<20} {'status':<8} {'created':<17} {'by':<16} note")
        for s in rows:
            status = "active" if s.active else "revoked"
            print(f"{s.name:<20} {status:<8} {_when(s.created_ms):<17} {s.created_by:<16} {s.note}")
        if not rows:
            print("没有 DICOM 发送方 / no DICOM senders yet: mchub cloud dicom-sender add NAME")
        print(f"{sum(s.active for s in rows)} active, {sum(not s.active for s in rows)} revoked")
        return 0

    return await _with_db(cfg, go)


async def _revoke(cfg: Any, args: argparse.Namespace) -> int:
    from cloud.integration.dicom_senders import revoke_sender
    from cloud.users.cli import _actor, _with_db

    async def go(db: Any) -> int:
        await revoke_sender(db, args.name, actor=_actor())
        print(f"已吊销 / DICOM sender {args.name} revoked; its next request is refused")
        return 0

    return await _with_db(cfg, go)


def register(sub: Any, add: Callable[..., Any], run: Callable[..., Any]) -> None:
    """Add ``dicom-sender`` to the ``mchub cloud`` subparsers (``add``/``run`` are cloud/cli.py's helpers)."""
    group = sub.add_parser("dicom-sender", help="DICOM 发送方 / STOW-RS sender credentials: add, list, revoke",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = group.add_subparsers(dest="dicom_sender_command", metavar="ACTION")
    p = add("add", "创建凭据 / create a credential for a PACS or modality gateway and print its token once",
            run(_add), actions)
    p.add_argument("name", help="发送方名称 / 1-64 of A-Z a-z 0-9 . _ - (e.g. PACS1)")
    p.add_argument("--note", default="", help="备注 / what the sender is (shown in the list)")
    add("list", "列出凭据 / every credential, active and revoked (never the token)", run(_list), actions)
    p = add("revoke", "吊销凭据 / revoke the sender's credential: refused from its next request", run(_revoke),
            actions)
    p.add_argument("name", help="发送方名称 / the sender's name")
