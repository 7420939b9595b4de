"""The in-memory task store: one process's task records, an owner index for newest-first pages."""

from __future__ import annotations

import bisect
import dataclasses
from typing import Any

from gateway.stores.base import TERMINAL_TASK_STATES, Task, TaskPage


class MemoryTasks:
    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}
        self._by_owner: dict[str, list[str]] = {}  # task ids in ascending (creation) order

    async def create(self, task: Task) -> None:
        self._tasks[task.task_id] = dataclasses.replace(task)
        ids = self._by_owner.setdefault(task.owner, [])
        if ids and ids[-1] > task.task_id:
            bisect.insort(ids, task.task_id)
        else:
            ids.append(task.task_id)

    async def get(self, task_id: str) -> Task | None:
        task = self._tasks.get(task_id)
        return dataclasses.replace(task) if task is not None else None

    async def update(
        self, task_id: str, expect: frozenset[str], changes: dict[str, Any]
    ) -> Task | None:
        task = self._tasks.get(task_id)
        if task is None or task.status not in expect:
            return None
        for name, value in changes.items():
            setattr(task, name, value)
        return dataclasses.replace(task)

    async def page(
        self,
        owner: str,
        *,
        status: str | None,
        type: str | None,
        after: str | None,
        limit: int,
    ) -> TaskPage:
        ids = self._by_owner.get(owner, [])
        end = bisect.bisect_left(ids, after) if after is not None else len(ids)
        found: list[Task] = []
        for index in range(end - 1, -1, -1):
            task = self._tasks[ids[index]]
            if (status is None or task.status == status) and (type is None or task.type == type):
                if len(found) == limit:
                    return TaskPage(found, found[-1].task_id)
                found.append(dataclasses.replace(task))
        return TaskPage(found, None)

    async def unfinished(self) -> list[Task]:
        return [
            dataclasses.replace(t)
            for t in self._tasks.values()
            if t.status not in TERMINAL_TASK_STATES
        ]

    async def prune(self, finished_before: int) -> int:
        gone = [
            t
            for t in self._tasks.values()
            if t.finished_at is not None and t.finished_at < finished_before
        ]
        for task in gone:
            del self._tasks[task.task_id]
            ids = self._by_owner[task.owner]
            ids.pop(bisect.bisect_left(ids, task.task_id))
            if not ids:
                del self._by_owner[task.owner]
        return len(gone)

    # One process drives every task it has: a lease is always its own.

    async def acquire_lease(self, task_id: str, holder: str, ttl_s: float) -> bool:
        return True

    async def renew_lease(self, task_id: str, holder: str, ttl_s: float) -> bool:
        return True

    async def release_lease(self, task_id: str, holder: str) -> None:
        return None
