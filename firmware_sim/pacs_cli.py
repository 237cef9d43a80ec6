"""``mchub sim pacs`` — a simulated hospital PACS (模拟 PACS): make, STOW-RS and C-STORE.

Also runnable on its own: ``python -m firmware_sim.pacs_cli --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

EPILOG = """\
examples / 示例:
  # 生成一套中文乳腺检查（超声、钼靶、含 BI-RADS 的文本 SR）/ make a Chinese breast study
  mchub sim pacs make out/ --charset GB18030 --birads 4A
  # 用 DICOMweb STOW-RS 发送 / send over STOW-RS
  mchub sim pacs stow http://127.0.0.1:8443/dicomweb out/*.dcm --sender PACS1 --token-file pacs1.token
  # 用 C-STORE 发送（主叫 AE 必须在云端白名单内）/ send by C-STORE (calling AE must be allowed)
  mchub sim pacs cstore 127.0.0.1 11112 out/*.dcm --calling-aet PACS1
"""


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``make``, ``stow``, ``cstore`` and ``echo`` subcommands."""
    parser.description = "模拟医院 PACS / simulated hospital PACS: make synthetic studies and send them."
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="pacs_command", metavar="ACTION", required=True)
    help_ = "生成合成检查 / write a synthetic US + MG + SR study as .dcm files"
    make = sub.add_parser("make", help=help_, description=help_)
    make.add_argument("out", type=Path, help="输出目录（不存在则创建） / directory to write into (created if missing)")
    make.add_argument("--charset", default="GB18030", choices=["GB18030", "ISO_IR 192"],
                      help="中文姓名的字符集 / Specific Character Set for the Chinese name (default GB18030)")
    make.add_argument("--name", default="王^秀英", help="patient name as family^given (default 王^秀英)")
    make.add_argument("--birads", default="4A", help="结构化报告中的 BI-RADS 分类 / "
                                                     "BI-RADS category in the SR: 0-6, 4A, 4B, 4C (default 4A)")
    make.add_argument("--coded", action="store_true", help="同时给出评估编码 / "
                                                           "also code the assessment (SNOMED CT, 0-5 only)")
    make.set_defaults(func=_make)
    help_ = "用 STOW-RS 发送 / POST files to a DICOMweb STOW-RS service"
    stow = sub.add_parser("stow", help=help_, description=help_)
    stow.add_argument("base_url", help="服务根地址 / service root, e.g. http://127.0.0.1:8443/dicomweb")
    stow.add_argument("files", nargs="+", type=Path, help="DICOM 文件 / DICOM Part 10 files")
    stow.add_argument("--study", help="发送到指定检查 / POST to /studies/{STUDY} instead of /studies")
    stow.add_argument("--sender", help="发送方名称 / sender name of the credential (HTTP Basic user)")
    stow.add_argument("--token-file", type=Path, help="保存发送方令牌的文件（第一行） / "
                                                      "file holding the sender's token (first line)")
    stow.set_defaults(func=_stow)
    for name, help_ in (("cstore", "用 C-STORE 发送 / send files as a C-STORE SCU"),
                        ("echo", "C-ECHO 连通性测试 / verify the association")):
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("host")
        p.add_argument("port", type=int)
        if name == "cstore":
            p.add_argument("files", nargs="+", type=Path, help="DICOM 文件 / DICOM Part 10 files")
        p.add_argument("--calling-aet", default="SIMPACS", help="本方 AE 名称 / our AE title (default SIMPACS)")
        p.add_argument("--called-aet", default="MCHUB", help="对方 SCP 的 AE 名称 / the SCP's AE title (default MCHUB)")
        p.set_defaults(func=_cstore if name == "cstore" else _echo)


def _make(args: argparse.Namespace) -> int:
    from pydicom.uid import generate_uid

    from firmware_sim import pacs_data

    args.out.mkdir(parents=True, exist_ok=True)
    patient = pacs_data.Patient(name=args.name)
    study = generate_uid(prefix=None)
    items = {
        "us.dcm": pacs_data.ultrasound(patient, args.charset, study),
        "mg.dcm": pacs_data.mammogram(patient, args.charset, study_uid=study),
        "sr.dcm": pacs_data.basic_text_sr(patient, args.charset, args.birads, args.coded, study),
    }
    for name, ds in items.items():
        (args.out / name).write_bytes(pacs_data.to_part10(ds))
        print(args.out / name)
    return 0


def _stow(args: argparse.Namespace) -> int:
    from firmware_sim import pacs

    try:
        credentials = None
        if args.sender or args.token_file:
            if not (args.sender and args.token_file):
                print("--sender and --token-file go together / 需同时给出", file=sys.stderr)
                return 2
            credentials = (args.sender, args.token_file.read_text(encoding="utf-8").splitlines()[0].strip())
        answer = asyncio.run(pacs.stow(args.base_url, [f.read_bytes() for f in args.files], study=args.study,
                                       credentials=credentials))
    except (OSError, pacs.PacsSimError) as exc:
        print(f"发送失败 / failed: {exc}", file=sys.stderr)
        return 2
    print(f"HTTP {answer.status}: {len(answer.stored)} stored, {len(answer.failed)} failed")
    for uid, code, comment in answer.failed:
        print(f"  failed {uid or '-'}: 0x{code:04X} {comment}")
    if answer.status >= 400 and not answer.failed:
        print(json.dumps(answer.body, ensure_ascii=False))
    return 0 if answer.status == 200 else 1


def _cstore(args: argparse.Namespace) -> int:
    from firmware_sim import pacs

    try:
        statuses = pacs.cstore(args.files, args.host, args.port, calling_aet=args.calling_aet,
                               called_aet=args.called_aet)
    except (OSError, pacs.PacsSimError) as exc:
        print(f"发送失败 / failed: {exc}", file=sys.stderr)
        return 2
    for path, st in zip(args.files, statuses, strict=True):
        print(f"{path}: 0x{st.status:04X} {st.comment}".rstrip())
    return 0 if all(s.status == 0 for s in statuses) else 1


def _echo(args: argparse.Namespace) -> int:
    from firmware_sim import pacs

    try:
        status = pacs.echo(args.host, args.port, calling_aet=args.calling_aet, called_aet=args.called_aet)
    except (OSError, pacs.PacsSimError) as exc:
        print(f"连接失败 / failed: {exc}", file=sys.stderr)
        return 2
    print(f"C-ECHO status 0x{status:04X}")
    return 0 if status == 0 else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``python -m firmware_sim.pacs_cli``."""
    parser = argparse.ArgumentParser(prog="mchub sim pacs")
    register(parser)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
