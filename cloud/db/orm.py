"""Start and stop tortoise-orm on the configured database.

    async with orm(config.database.url):
        await SomeModel.all()  # tortoise models usable in here
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tortoise import Tortoise

MODELS = ["cloud.db.models"]


def tortoise_url(url: str) -> str:
    """Our database URL in tortoise's spelling (asyncpg:// for PostgreSQL)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "asyncpg://" + url.removeprefix(prefix)
    return url


async def start_orm(url: str) -> None:
    """Initialise tortoise for this process (usable from every task)."""
    # one connection name per dialect: tortoise caches compiled statements per connection name
    name = "sqlite" if url.startswith("sqlite") else "postgres"
    connection: str | dict[str, Any] = tortoise_url(url)
    if url.startswith("sqlite:///"):  # BEGIN IMMEDIATE + busy timeout: cloud/db/tortoise_sqlite.py
        connection = {"engine": "cloud.db.tortoise_sqlite", "credentials": {"file_path": url.removeprefix("sqlite:///")}}
    config = {"connections": {name: connection},
              "apps": {"models": {"models": MODELS, "default_connection": name}}}
    await Tortoise.init(config=config, _enable_global_fallback=True)


async def stop_orm() -> None:
    """Close tortoise's connections."""
    await Tortoise.close_connections()


@asynccontextmanager
async def orm(url: str) -> AsyncIterator[None]:
    """Tortoise initialised for the duration of the block."""
    await start_orm(url)
    try:
        yield
    finally:
        await stop_orm()
