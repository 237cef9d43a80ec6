"""HL7 processing in a process of its own, beside the listener (PostgreSQL deployments).

The MLLP listener and :class:`~cloud.integration.inbound.Hl7Processor` both need CPU for
every message (checking and sealing it before the ACK; parsing it again, matching the
patient and building result rows after). In one Python process they share one core (the
GIL): under a burst the processor falls behind what the listener acknowledges. So the
integration owner runs the processor as a child process on PostgreSQL
(:class:`ProcessorChild`): it takes the stored messages from the database exactly as the
in-process one did (claims with ``FOR UPDATE``, every message in the same transaction as its
mark), so a crash of either process repeats work and never duplicates it. Reading the
messages (parsing, result rows: most of its CPU) it leaves to reader processes of its own
(:mod:`cloud.integration.read_workers`), which read the next groups while it applies the
current one. SQLite has a
single writer and one process (``[server] workers``), so there the processor stays in the
owner process.

The child reads its standard input: when the owner goes away — even by SIGKILL — the pipe
closes and the child stops, so it never outlives the process that started it.

    python -m cloud.integration.hl7_process --config cloud.toml     # started by the owner, not by hand
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import subprocess
import sys
from pathlib import Path

from cloud.server.gc_freeze import freeze_startup

log = logging.getLogger("mchub.cloud.integration")
RESTART_S = 5.0  #: wait before starting a child that exited unexpectedly again
#: allocations between two young-generation collections of the cyclic garbage collector here (Python's
#: default: 700). A processing round keeps up to a thousand parsed messages alive, each of them dozens of
#: containers: at 700 the collector ran every few messages and walked them all again, a fifth of the CPU
#: spent on reading messages (bench/profile_hl7.py). Nearly all of it is freed by reference counting.
GC_YOUNG = 20_000


class ProcessorChild:
    """Start the processor process, restart it if it dies, stop it with the owner."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.proc: asyncio.subprocess.Process | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Keep one child running until ``stop`` is set (or this task is cancelled)."""
        try:
            await self._keep(stop)
        finally:  # cancelled: it must not outlive us, and its pipes are closed before the loop is
            await self.close()

    async def _keep(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "cloud.integration.hl7_process", "--config", str(self.config),
                stdin=subprocess.PIPE)
            waiting = asyncio.ensure_future(self.proc.wait())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if stop.is_set():
                await self.close()
                return
            log.error("HL7 processor process exited with %s; starting it again in %.0f s", self.proc.returncode,
                      RESTART_S)
            await self.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RESTART_S)

    async def close(self) -> None:
        """Ask the child to stop (its standard input closed, SIGTERM), after 10 s kill it."""
        proc = self.proc
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        if proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def tune_gc() -> None:
    """The garbage collector as the processor process runs it (``GC_YOUNG``); call once set up."""
    freeze_startup()
    gc.set_threshold(GC_YOUNG, 50, 100)


async def _main(config: Path) -> int:
    from cloud.config import load
    from cloud.db.engine import Database
    from cloud.intake.keystore import load_keys
    from cloud.integration.inbound import Hl7Processor
    from cloud.integration.read_workers import ReadWorkers
    from cloud.mllp.db_store import Hl7Store
    from cloud.records.crypto_at_rest import AtRest
    from cloud.server import logs
    from protocol.hl7.codemap import CodeMap

    cfg = load(config)
    logs.setup(cfg.logging.level, cfg.logging.json)
    keys = load_keys(cfg.keys_dir)
    at_rest = AtRest(keys.at_rest, keys.blind_index)
    db = await Database.connect(cfg.database.url, 2)
    store = Hl7Store(db, at_rest)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def owner_gone() -> None:  # EOF on stdin: the owner exited (or was killed)
        await reader.read()
        stop.set()

    watch = asyncio.ensure_future(owner_gone())
    tune_gc()
    codes = CodeMap.from_config(cfg.mllp.code_map, str(cfg.path), "[mllp] code_map")
    readers = ReadWorkers(codes, keys.at_rest, keys.blind_index)
    processor = Hl7Processor(db, store, at_rest, codes, readers)
    try:
        while not stop.is_set():
            try:
                await processor.run(stop)
            except Exception:
                log.exception("HL7 processor stopped unexpectedly; restarting in 5 s")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), RESTART_S)
    finally:
        watch.cancel()
        readers.close()
        await store.close()
        await db.close()
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, required=True)
    return asyncio.run(_main(ap.parse_args().config))


if __name__ == "__main__":
    raise SystemExit(main())
