"""The MCH jobs inside a cloud worker: the assembler sweep, the uploader and the notifier.

``start(db, cfg, stop)`` (called from the cloud app's lifespan when ``[mch] enabled``)
returns the background tasks; each runs until ``stop`` is set:

* the assembler sweep every ``assemble_interval_s`` (:func:`cloud.mch.assembler.sweep`);
* the ``mch.upload`` dispatcher (:mod:`cloud.mch.uploader`), only when ``platform_url``
  is set — otherwise validated records wait in the queue;
* the ``mch.followup`` dispatcher with the logging notifier.

Several workers may run all three: outbox claims are disjoint (``FOR UPDATE SKIP
LOCKED``) and assembly takes a per-subject lock and stores nothing for unchanged data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from cloud import outbox
from cloud.config import CloudConfig
from cloud.db.engine import Database
from cloud.errors import CloudError
from cloud.mch import assembler, followups
from cloud.mch.profiles import load_profile

log = logging.getLogger("mchub.cloud.mch")


def context(cfg: CloudConfig) -> assembler.Context:
    """The assembly context of a configuration (profile loaded and checked)."""
    return assembler.Context(load_profile(cfg.mch.profile or None), default_site=cfg.mch.default_site,
                             include_simulated=cfg.fleet.training_rig)


async def run_assembler(db: Database, ctx: assembler.Context, interval_s: float, stop: asyncio.Event) -> None:
    """Sweep until ``stop``; a database error is logged and the next sweep tries again."""
    while not stop.is_set():
        try:
            await assembler.sweep(db, ctx)
        except CloudError as exc:
            log.warning("mch assembler: %s (retrying in %.0f s)", exc, interval_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)


def start(db: Database, cfg: CloudConfig, stop: asyncio.Event) -> list[asyncio.Task[None]]:
    """Start the MCH background tasks of one worker (configuration errors raise before anything runs)."""
    from cloud.mch import uploader

    ctx = context(cfg)
    tasks = [asyncio.create_task(run_assembler(db, ctx, cfg.mch.assemble_interval_s, stop)),
             asyncio.create_task(outbox.run_dispatcher(db, followups.FOLLOWUP_TOPIC,
                                                       followups.deliverer(followups.LoggingNotifier()),
                                                       cfg.outbox, stop))]
    if cfg.mch.platform_url:
        tasks.append(asyncio.create_task(uploader.run(db, cfg, ctx.profile, stop)))
    else:
        log.warning("mch: [mch] platform_url is empty: records are validated and queued but not uploaded")
    return tasks
