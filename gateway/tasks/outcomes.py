"""Recording how a task ended: succeeded, failed, canceled at the provider, or interrupted by a
shutdown.

Every write expects the task to be still unfinished, so whichever outcome is stored first (a
client's cancel included) is final and a later one is dropped.
"""

from __future__ import annotations

from typing import Any

import structlog

from gateway.artifacts.files import Artifacts
from gateway.contract.errors import GatewayError
from gateway.metrics import Metrics
from gateway.stores.base import Task, TaskStore

UNFINISHED = frozenset({"queued", "running"})
RUNNING = frozenset({"running"})
_log = structlog.get_logger("beatra.tasks")

INTERRUPTED_MESSAGE = (
    "The gateway stopped while this task was running. It was not resubmitted "
    "(a paid job is never started twice); create a new task to try again."
)
INTERRUPTED: dict[str, Any] = {
    "code": "service_unavailable",
    "message": INTERRUPTED_MESSAGE,
    "retryable": True,
}


def error_object(error: GatewayError) -> dict[str, Any]:
    return {"code": error.code, "message": error.message, "retryable": error.spec.retryable}


class Outcomes:
    def __init__(self, store: TaskStore, artifacts: Artifacts, metrics: Metrics) -> None:
        self._store = store
        self._artifacts = artifacts  # its clock stamps the records
        self._metrics = metrics

    async def finish(self, task: Task, changes: dict[str, Any]) -> bool:
        """Store ``changes`` (with a ``status``) as the task's end; False if it had ended."""
        now = int(self._artifacts.now())
        done = await self._store.update(
            task.task_id, UNFINISHED, {**changes, "updated_at": now, "finished_at": now}
        )
        if done is not None:
            self._metrics.tasks.labels(task.type, changes["status"]).inc()
        return done is not None

    async def fail(self, task: Task, error: GatewayError) -> None:
        await self.finish(task, {"status": "failed", "error": error_object(error)})

    async def interrupt(self, task_id: str) -> None:
        now = int(self._artifacts.now())
        changes = {
            "status": "failed",
            "error": dict(INTERRUPTED),
            "updated_at": now,
            "finished_at": now,
        }
        if await self._store.update(task_id, UNFINISHED, changes) is not None:
            _log.warning("task_interrupted", task_id=task_id)
