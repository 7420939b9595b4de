"""Who drives a task: leases in the task store, and the take-over of a dead replica's tasks.

Replicas share the store. A driver holds its task's lease and renews it while it works; a
replica that finds an unfinished task whose lease ran out takes it over, by polling the job
recorded for it, never by submitting it again (see ``gateway.tasks.submit``). One process alone
owns every lease and runs no renewal or recovery.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Callable

import structlog

from gateway.stores.base import Task, TaskStore
from gateway.tasks.active import ActiveTask, Drives
from gateway.tasks.outcomes import UNFINISHED

_log = structlog.get_logger("beatra.tasks")


class Leases:
    def __init__(self, store: TaskStore, *, shared: bool, lease_s: float) -> None:
        self._store = store
        self.shared = shared
        self._lease_s = lease_s
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    async def acquire(self, task_id: str) -> bool:
        return await self._store.acquire_lease(task_id, self._holder, self._lease_s)

    async def release(self, task_id: str) -> None:
        await self._store.release_lease(task_id, self._holder)

    async def watch(self, task_id: str, active: ActiveTask) -> None:
        """Renew the lease; stop the drive when it is lost or the task was canceled elsewhere."""
        while True:
            await asyncio.sleep(self._lease_s / 3)
            try:
                kept = await self._store.renew_lease(task_id, self._holder, self._lease_s)
                current = await self._store.get(task_id)
            except Exception:
                _log.warning("task_lease_renewal_failed", task_id=task_id)
                continue
            if not kept:
                active.lease_lost = True
            if not kept or current is None or current.status not in UNFINISHED:
                active.stop()
                return

    async def recover_forever(self, drives: Drives, launch: Callable[[Task], None]) -> None:
        """Take over unfinished tasks whose driver stopped renewing its lease."""
        while True:
            await asyncio.sleep(self._lease_s / 2)
            try:
                for task in await self._store.unfinished():
                    if task.task_id not in drives.active and not drives.draining:
                        launch(task)  # the drive only proceeds if it wins the lease
            except Exception:
                _log.exception("task_recovery_failed")
