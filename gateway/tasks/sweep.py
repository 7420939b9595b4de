"""The periodic sweep: expired artifacts (their files and records) and task records finished
longer ago than the retention.

A failed round is logged and the next one tries again; the sweep never stops the gateway.
"""

from __future__ import annotations

import asyncio

import structlog

from gateway.artifacts.files import Artifacts
from gateway.stores.base import TaskStore

_log = structlog.get_logger("beatra.tasks")


async def sweep_forever(
    artifacts: Artifacts, store: TaskStore, interval_s: float, task_retention_s: float
) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await artifacts.sweep()
            await store.prune(artifacts.now() - int(task_retention_s))
        except Exception:
            _log.exception("sweep_failed")
