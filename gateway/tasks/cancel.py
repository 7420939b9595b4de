"""Canceling a task: recording it canceled (final the moment it is stored) and asking the
provider to drop the job where it can.

The drive's coroutine is stopped by the runner; what it leaves at the provider is canceled here,
briefly while the gateway shuts down so a slow provider cannot hold the shutdown.
"""

from __future__ import annotations

import asyncio

import structlog

from gateway.artifacts.files import Artifacts
from gateway.contract.errors import GatewayError
from gateway.metrics import Metrics
from gateway.stores.base import Task, TaskStore
from gateway.tasks.active import ActiveTask
from gateway.tasks.outcomes import UNFINISHED
from providers.base import UpstreamError

PROVIDER_CANCEL_TIMEOUT_S = 10.0
DRAIN_CANCEL_TIMEOUT_S = 2.0
_log = structlog.get_logger("beatra.tasks")


async def record_canceled(
    store: TaskStore, artifacts: Artifacts, metrics: Metrics, task: Task
) -> Task:
    """Make ``task`` canceled now, or refuse because it has already finished."""
    now = int(artifacts.now())
    changes = {"status": "canceled", "updated_at": now, "finished_at": now}
    updated = await store.update(task.task_id, UNFINISHED, changes)
    if updated is None:
        raise GatewayError("task_not_cancelable", "The task has already finished.")
    metrics.tasks.labels(task.type, "canceled").inc()
    return updated


async def cancel_at_provider(active: ActiveTask, *, draining: bool) -> None:
    """Ask the provider to cancel the task's job, unless it has none or it already ended."""
    job = active.job
    if active.adapter is None or job is None or job.done is not None:
        return
    if active.settled_at_provider:
        return
    timeout = DRAIN_CANCEL_TIMEOUT_S if draining else PROVIDER_CANCEL_TIMEOUT_S
    try:
        async with asyncio.timeout(timeout):
            await active.adapter.cancel(job)
    except (UpstreamError, TimeoutError) as error:
        _log.warning("task_provider_cancel_failed", job_id=job.job_id, error=str(error))
