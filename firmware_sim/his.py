"""HIS simulator: the hospital side of HL7 v2 over MLLP, written from the specification.

* :class:`HisReceiver` is the HIS that receives mchub's vitals ORU^R01. It misbehaves on
  purpose (seeded, so runs repeat): drops connections before or after recording a
  message, delays ACKs past the sender's timeout, answers AE now and then. It validates
  every message with hl7apy, deduplicates by MSH-10 and records what it accepted — the
  HIS's view of "exactly once".
* :func:`send_messages` is the HIS/LIS that sends results and ADT to mchub's listener:
  it replays fixture files and generated messages (UTF-8 and GB18030 names, local codes,
  malformed ones) over one persistent connection, split into random chunks, optionally
  with garbage between frames, and returns the ACKs.

It encodes and parses MLLP/ER7 on its own (no ``protocol.hl7``), so a bug in mchub's
codec cannot hide behind its twin. Run ``python -m firmware_sim.his --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("mchub.sim.his")
VT, FS_CR = b"\x0b", b"\x1c\x0d"


def frame(message: bytes) -> bytes:
    """MLLP frame: VT, message, FS CR."""
    return VT + message + FS_CR


def unframe(buffer: bytearray) -> list[bytes]:
    """Remove and return every complete frame at the start of ``buffer`` (bytes before VT dropped)."""
    out: list[bytes] = []
    while True:
        start = buffer.find(VT)
        end = buffer.find(FS_CR, start + 1)
        if start < 0 or end < 0:
            return out
        out.append(bytes(buffer[start + 1:end]))
        del buffer[:end + 2]


def fields(message: bytes, segment: str, encoding: str = "utf-8") -> list[str]:
    """Fields of the first ``segment`` (for MSH, index n is MSH-n)."""
    for line in message.decode(encoding, "replace").replace("\n", "\r").split("\r"):
        if line.startswith(segment):
            parts = line.split("|")
            return ["MSH", "|", *parts[1:]] if segment == "MSH" else parts
    return []


def ack(message: bytes, code: str, text: str = "") -> bytes:
    """An original-mode ACK for ``message``."""
    msh = fields(message, "MSH")

    def get(n: int) -> str:
        return msh[n] if n < len(msh) else ""

    trigger = get(9).split("^")[1] if "^" in get(9) else ""
    return (f"MSH|^~\\&|HIS|HOSPITAL|{get(3)}|{get(4)}|20260101120000||ACK^{trigger}^ACK|H{get(10)}|P|2.5.1\r"
            f"MSA|{code}|{get(10)}|{text}\r").encode()


def validate_with_hl7apy(message: bytes) -> str | None:
    """None when hl7apy parses and validates the message strictly, else the reason."""
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.exceptions import HL7apyException
    from hl7apy.parser import parse_message

    try:
        parsed = parse_message(message.decode("utf-8"), validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
        parsed.validate()
    except (HL7apyException, UnicodeDecodeError, ValueError) as exc:
        return f"hl7apy: {exc}"
    return None


@dataclass
class Faults:
    """Probabilities of each misbehaviour per received message (seeded)."""

    drop_before: float = 0.0  #: close the connection without recording or answering
    drop_after: float = 0.0  #: record, then close without answering
    delay: float = 0.0  #: record, answer after ``delay_seconds``
    delay_seconds: float = 1.0
    error: float = 0.0  #: answer AE without recording
    seed: int = 7


@dataclass
class HisReceiver:
    """An MLLP server that records accepted messages by control id."""

    faults: Faults = field(default_factory=Faults)
    validate: bool = True
    accepted: dict[str, bytes] = field(default_factory=dict)  #: control id -> first accepted message
    refused: dict[str, str] = field(default_factory=dict)  #: control id -> the reason we answered AE/AR
    receipts: list[str] = field(default_factory=list)  #: every control id received, resends included

    def __post_init__(self) -> None:
        self.rng = random.Random(self.faults.seed)
        self.server: asyncio.Server | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen; returns the port."""
        self.server = await asyncio.start_server(self._serve, host, port)
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = bytearray()
        try:
            while data := await reader.read(65536):
                buffer += data
                for message in unframe(buffer):
                    answer = await self._answer(message)
                    if answer is None:
                        return
                    writer.write(frame(answer))
                    await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _answer(self, message: bytes) -> bytes | None:
        f = self.faults
        cid = (fields(message, "MSH") + [""] * 11)[10]
        self.receipts.append(cid)
        if cid in self.accepted:
            return ack(message, "AA", "duplicate")
        roll = self.rng.random()
        if roll < f.drop_before:
            log.info("HIS: dropping the connection before recording %s", cid)
            return None
        roll -= f.drop_before
        if roll < f.error:
            self.refused[cid] = "patient not registered in HIS (simulated)"
            return ack(message, "AE", self.refused[cid])
        roll -= f.error
        reason = validate_with_hl7apy(message) if self.validate else None
        if reason is not None:
            self.refused[cid] = reason
            return ack(message, "AR", reason[:80].replace("|", "/"))
        self.accepted[cid] = message
        if roll < f.drop_after:
            log.info("HIS: recorded %s, dropping the connection before the ACK", cid)
            return None
        roll -= f.drop_after
        if roll < f.delay:
            await asyncio.sleep(f.delay_seconds)
        return ack(message, "AA")


def lab_message(i: int, charset: str = "UTF-8", name: str = "王秀英") -> bytes:
    """A generated ORU^R01 (cervical screening: local HPV code, TBS cytology) with a Chinese name."""
    codec = {"UTF-8": "utf-8", "GB18030": "gb18030"}[charset]
    msh18 = "UNICODE UTF-8" if charset == "UTF-8" else "GB18030"
    text = (
        f"MSH|^~\\&|LIS|妇幼保健院|MCHUB|CLOUD|20260301093000+0800||ORU^R01^ORU_R01|LIS{i:08d}|P|2.5.1"
        f"||||||{msh18}\r"
        f"PID|1||M{i:06d}^^^HOSP^MR~11010519491231002X^^^^NNCHN||{name}||19491231|F\r"
        f"OBR|1|ORD{i}|FIL{i}|CCS^宫颈癌筛查^L|||20260301080000+0800|||||||||||||||20260301090000+0800|||F\r"
        "OBX|1|ST|HPV16^HPV 16型^L||阴性||||||F|||20260301085000+0800\r"
        "OBX|2|CWE|TCT^宫颈液基细胞学(TBS)^L||NILM^未见上皮内病变或恶性病变^L||||||F\r"
        "OBX|3|NM|718-7^Hemoglobin^LN||128|g/L^g/L^UCUM|115-150|N|||F\r"
        "OBX|4|FT|22637-3^病理诊断^LN||慢性宫颈炎\\.br\\未见异型增生||||||F\r"
    )
    return text.encode(codec)


def adt_message(i: int, event: str = "A04") -> bytes:
    """A generated ADT (A01/A04/A08; A40 merges M{i-1} into M{i})."""
    mrg = f"MRG|M{i - 1:06d}^^^HOSP^MR\r" if event == "A40" else ""
    return (f"MSH|^~\\&|HIS|妇幼保健院|MCHUB|CLOUD|20260301093000+0800||ADT^{event}^ADT_A01|ADT{i:08d}|P|2.5.1"
            f"||||||UNICODE UTF-8\rEVN|{event}|20260301093000+0800\r"
            f"PID|1||M{i:06d}^^^HOSP^MR||李娜||19850101|F\rPV1|1|O\r{mrg}").encode()


MALFORMED: dict[str, bytes] = {
    "not numeric": b"MSH|^~\\&|LIS|H|MCHUB|C|20260301||ORU^R01|BAD1|P|2.5.1\rPID|||9^^^H^MR\rOBR|1\r"
                   b"OBX|1|NM|718-7^Hb^LN||high|g/L|||||F\r",
    "no control id": b"MSH|^~\\&|LIS|H|MCHUB|C|20260301||ORU^R01||P|2.5.1\rPID|||9^^^H^MR\rOBR|1\r",
    "unsupported type": b"MSH|^~\\&|LIS|H|MCHUB|C|20260301||QRY^Q01|BAD3|P|2.5.1\r",
    "no PID": b"MSH|^~\\&|LIS|H|MCHUB|C|20260301||ORU^R01|BAD4|P|2.5.1\rOBR|1\rOBX|1|ST|X^x^L||y||||||F\r",
    "bad status": b"MSH|^~\\&|LIS|H|MCHUB|C|20260301||ORU^R01|BAD5|P|2.5.1\rPID|||9^^^H^MR\rOBR|1\r"
                  b"OBX|1|ST|X^x^L||y||||||Q\r",
}


def fixture_messages(folder: Path) -> dict[str, bytes]:
    """Every ``*.hl7`` file in ``folder``, segments normalised to CR."""
    return {p.name: p.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r").strip() + b"\r"
            for p in sorted(folder.glob("*.hl7"))}


async def send_messages(host: str, port: int, messages: list[bytes], *, seed: int = 1, garbage: bool = False,
                        pipeline: bool = False, read_timeout: float = 30.0) -> list[bytes]:
    """Send every message over ONE connection and return the ACK frames, in order.

    Frames go out in random-sized chunks; ``garbage`` puts junk bytes before some frames;
    ``pipeline`` writes all frames first (several frames per read on the other side).
    """
    rng = random.Random(seed)
    reader, writer = await asyncio.open_connection(host, port)
    buffer = bytearray()
    acks: list[bytes] = []

    async def write(data: bytes) -> None:
        while data:
            n = rng.randint(1, max(1, len(data)))
            writer.write(data[:n])
            await writer.drain()
            data = data[n:]

    async def read_one() -> bytes:
        while True:
            got = unframe(buffer)
            if got:
                buffer[:0] = b"".join(frame(g) for g in got[1:])
                return got[0]
            data = await asyncio.wait_for(reader.read(65536), read_timeout)
            if not data:
                raise ConnectionError("listener closed the connection")
            buffer.extend(data)

    try:
        payload = [(b"junk\r\n" if garbage and rng.random() < 0.5 else b"") + frame(m) for m in messages]
        if pipeline:
            await write(b"".join(payload))
            acks = [await read_one() for _ in messages]
        else:
            for p in payload:
                await write(p)
                acks.append(await read_one())
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return acks


def main(argv: list[str] | None = None) -> int:
    """``python -m firmware_sim.his {receive,send}``."""
    p = argparse.ArgumentParser(prog="python -m firmware_sim.his", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("receive", help="run a HIS that receives vitals (with faults) until Ctrl-C")
    r.add_argument("--port", type=int, default=2576, help="TCP port to listen on (default 2576)")
    r.add_argument("--drop", type=float, default=0.1, help="probability of dropping a connection")
    r.add_argument("--delay", type=float, default=0.1, help="probability of a late ACK")
    r.add_argument("--error", type=float, default=0.05, help="probability of answering AE")
    r.add_argument("--seed", type=int, default=7, help="random seed: the same seed repeats the same faults")
    s = sub.add_parser("send", help="send fixture files and generated messages to an mchub listener")
    s.add_argument("--host", default="127.0.0.1", help="mchub listener address (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=2575, help="mchub listener port (default 2575)")
    s.add_argument("--fixtures", type=Path, help="folder of *.hl7 files to replay")
    s.add_argument("--generated", type=int, default=10, help="how many generated lab messages")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.cmd == "receive":
        his = HisReceiver(Faults(drop_before=args.drop / 2, drop_after=args.drop / 2, delay=args.delay,
                                 error=args.error, seed=args.seed))

        async def run() -> None:
            port = await his.start("0.0.0.0", args.port)
            print(f"HIS simulator listening on :{port}; Ctrl-C to stop")
            await asyncio.Event().wait()

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run())
        print(f"accepted {len(his.accepted)}, refused {len(his.refused)}, receipts {len(his.receipts)}")
        return 0
    messages = list(fixture_messages(args.fixtures).values()) if args.fixtures else []
    messages += [lab_message(i, "GB18030" if i % 2 else "UTF-8") for i in range(args.generated)]
    for a in asyncio.run(send_messages(args.host, args.port, messages)):
        print(a.decode("gb18030" if b"|GB18030" in a else "utf-8", "replace").replace("\r", " | "))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
