"""``mchub decode``: decode one captured device frame for a field technician.

Prints one JSON document per event on stdout (normally one)::

    {"codec": "ble-bp", "kind": "blood_pressure",
     "observations": [{"code": "8480-6", "value": 120.0, "unit": "mm[Hg]",
                       "original_value": null, "original_unit": null}, ...],
     "device_time": "2024-03-15T14:30:45", "status": [...], "user_id": 1, "live": false,
     "raw": "1e7800..."}

An ID-card read prints its subject with the ID number, name and address masked (unless
``--show-pii``), never the photo (only its length) and never the raw frame. A frame the
codec rejects exits 1 with one line on stderr: ``mchub decode: CODEC: REASON: message``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

EPILOG = """\
examples:
  mchub decode --list
  mchub decode ble-bp "00 7800 5000 5a00"           120/80 mmHg, MAP 90
  mchub decode ble-thermometer 06b00e00fedc070c050b321b04
  mchub decode ble-weight 00:b0:36                   Wireshark-style colons work too

exit status: 0 decoded, 1 invalid frame or hex (reason on stderr), 2 unknown codec or usage.
中文：解码一帧设备数据并以 JSON 输出；身份证号、姓名默认脱敏（--show-pii 显示原文）。
"""


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``decode`` arguments."""
    parser.epilog = EPILOG
    parser.add_argument("codec", nargs="?", help="解码器名称 / codec name (see --list)")
    parser.add_argument("hex", nargs="*", help="十六进制数据帧（可含空格和冒号） / "
                                               "the frame as hex; spaces and colons allowed")
    parser.add_argument("--list", action="store_true", help="列出解码器 / list the codecs")
    parser.add_argument("--show-pii", action="store_true",
                        help="不遮蔽身份证号、姓名和地址（身份证数据帧） / "
                             "show ID numbers, names and addresses unmasked (ID-card frames)")
    parser.set_defaults(func=_run)


def parse_hex(text: str) -> bytes:
    """Bytes from hex text; whitespace, ``:`` and ``-`` between digits are ignored, ``0x`` too."""
    cleaned = "".join(text.split()).replace(":", "").replace("-", "")
    if cleaned[:2].lower() == "0x":
        cleaned = cleaned[2:]
    if not cleaned:
        raise ValueError("no hex digits given")
    if len(cleaned) % 2:
        raise ValueError(f"odd number of hex digits ({len(cleaned)})")
    return bytes.fromhex(cleaned)


def render(codec: str, event: Any, show_pii: bool = False) -> dict[str, Any]:
    """The JSON-ready form of one decoded event."""
    from drivers.base import CardRead, Measurement

    if isinstance(event, Measurement):
        return {
            "codec": codec,
            "kind": event.kind,
            "observations": [
                {"code": o.code, "value": o.value, "unit": o.unit, "original_value": o.original_value,
                 "original_unit": o.original_unit, **({"flag": o.flag} if o.flag else {})}
                for o in event.observations
            ],
            "device_time": event.device_time,
            "status": list(event.status),
            "user_id": event.user_id,
            "live": event.live,
            "raw": event.raw.hex(),
        }
    if isinstance(event, CardRead):
        return {
            "codec": codec,
            "kind": "card_read",
            "subject": _subject(event, show_pii),
            "photo_bytes": len(event.photo),
            "fingerprint_bytes": len(event.fingerprint),
            "raw_bytes": len(event.raw),
        }
    raise TypeError(f"codec {codec} returned {type(event).__name__}")


def _subject(card: Any, show_pii: bool) -> dict[str, Any]:
    import msgspec

    from protocol.idnum import mask, mask_name

    subject: dict[str, Any] = msgspec.to_builtins(card.subject)
    if not show_pii:
        if subject.get("national_id"):
            subject["national_id"] = mask(subject["national_id"])
        if subject.get("name"):
            subject["name"] = mask_name(subject["name"])
        if subject.get("address"):
            subject["address"] = subject["address"][:3] + "*" * max(1, len(subject["address"]) - 3)
    return subject


def _fail(message: str, code: int) -> int:
    print(f"mchub decode: {' '.join(message.split())}", file=sys.stderr)
    return code


def _run(args: argparse.Namespace) -> int:
    import msgspec

    from drivers.errors import DriverError, FrameError
    from drivers.registry import codecs

    available = codecs()
    if args.list:
        width = max((len(n) for n in available), default=0)
        for name, listed in available.items():
            print(f"{name:<{width}}  {listed.description}")
        return 0
    if not args.codec:
        return _fail("name a codec and a frame, e.g. mchub decode ble-bp \"00 7800 5000 5a00\" (see --list)", 2)
    info = available.get(args.codec)
    if info is None:
        return _fail(f"unknown codec {args.codec!r}; `mchub decode --list` shows the {len(available)} codecs", 2)
    try:
        data = parse_hex(" ".join(args.hex))
    except ValueError as exc:
        return _fail(f"not a hex frame: {exc}", 1)
    try:
        events = info.decode(data)
    except FrameError as exc:
        return _fail(f"{args.codec}: {exc.reason}: {exc}", 1)
    except DriverError as exc:
        return _fail(f"{args.codec}: {type(exc).__name__}: {exc}", 1)
    for event in events:
        print(msgspec.json.encode(render(args.codec, event, args.show_pii)).decode())
    return 0
