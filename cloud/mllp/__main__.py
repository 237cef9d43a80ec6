"""``python -m cloud.mllp``: run the MLLP listener on its own (embedded SQLite store or PostgreSQL).

Until ``mchub cloud serve`` starts it, this is how to try the listener with the HIS
simulator (``python -m firmware_sim.his send``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

from cloud.mllp.pg_store import PgMessageStore
from cloud.mllp.server import ListenerConfig, MllpListener
from cloud.mllp.sqlite_store import SqliteMessageStore
from cloud.mllp.store import MessageStore


def main(argv: list[str] | None = None) -> int:
    """Parse options and serve until Ctrl-C."""
    p = argparse.ArgumentParser(prog="python -m cloud.mllp", description="HL7 v2 MLLP listener (stores, then ACKs)")
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default all)")
    p.add_argument("--port", type=int, default=2575, help="TCP port (default 2575)")
    p.add_argument("--db", default="hl7.db", help="SQLite file for the embedded store (default hl7.db)")
    p.add_argument("--dsn", help="PostgreSQL DSN instead of SQLite, e.g. postgresql://user@host/mchub")
    p.add_argument("--max-size", type=int, default=1 << 20, help="largest message in bytes (default 1 MiB)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    async def serve() -> None:
        store: MessageStore = await PgMessageStore.open(args.dsn) if args.dsn else SqliteMessageStore(args.db)
        config = ListenerConfig(host=args.host, port=args.port, max_size=args.max_size)
        async with MllpListener(store, config):
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
