"""Driving one task from start to end: win its lease, wait for a slot, get its job at a
provider, follow it to a terminal state and record the outcome.

Only cancellation leaves a drive: any other failure is recorded as the task's error, since an
exception escaping would tear down the runner's task group. A canceled drive (by the client, by
shutdown, or because the lease went to another replica) cleans up according to why it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from gateway.contract.errors import GatewayError, from_upstream
from gateway.metrics import Metrics
from gateway.stores.base import Task
from gateway.tasks.active import ActiveTask, Drives, StopSignal
from gateway.tasks.cancel import cancel_at_provider
from gateway.tasks.leases import Leases
from gateway.tasks.outcomes import Outcomes
from gateway.tasks.poll import Poller
from gateway.tasks.submit import Submitter
from providers.base import UpstreamError
from providers.music.base import MusicAdapter, MusicStatus

_log = structlog.get_logger("beatra.tasks")


class Driver:
    def __init__(
        self,
        drives: Drives,
        leases: Leases,
        *,
        submitter: Submitter,
        poller: Poller,
        outcomes: Outcomes,
        metrics: Metrics,
        max_running: int,
    ) -> None:
        self._drives = drives
        self._leases = leases
        self._submitter = submitter
        self._poller = poller
        self._outcomes = outcomes
        self._metrics = metrics
        self._slots = asyncio.Semaphore(max_running)

    async def drive(self, task: Task, active: ActiveTask) -> None:
        watcher: asyncio.Task[None] | None = None
        try:
            try:
                if not await self._leases.acquire(task.task_id):
                    return  # another replica drives it
                if self._leases.shared:
                    watcher = asyncio.create_task(self._leases.watch(task.task_id, active))
                async with self._slots:
                    await self._work(task, active)
            except asyncio.CancelledError:
                await self._stopped(task, active)
                raise
            except StopSignal:
                await self._cancel_at_provider(active)
            except (UpstreamError, GatewayError) as error:
                await self._cancel_at_provider(active)
                failure = from_upstream(error) if isinstance(error, UpstreamError) else error
                await self._outcomes.fail(task, failure)
        except Exception:
            _log.exception("task_crashed", task_id=task.task_id, request_id=task.request_id)
            with contextlib.suppress(Exception):
                await self._outcomes.fail(task, GatewayError("internal_error"))
        finally:
            if watcher is not None:
                watcher.cancel()
            if not active.lease_lost:
                with contextlib.suppress(Exception):
                    await self._leases.release(task.task_id)
            self._drives.active.pop(task.task_id, None)

    async def _stopped(self, task: Task, active: ActiveTask) -> None:
        """The drive was canceled: by the client, by shutdown, or because the lease was lost."""
        if active.lease_lost:
            return  # another replica drives the task now: leave everything to it
        draining = self._drives.draining
        if draining and self._leases.shared and active.pollable:
            return  # its lease is released; another replica goes on polling the job
        if draining:
            await self._outcomes.interrupt(task.task_id)
        await self._cancel_at_provider(active)

    async def _cancel_at_provider(self, active: ActiveTask) -> None:
        await cancel_at_provider(active, draining=self._drives.draining)

    async def _work(self, task: Task, active: ActiveTask) -> None:
        adapter, job = await self._submitter.job_for(task, active)
        self._metrics.tasks_running.inc()
        try:
            status = job.done or await self._poller.poll(task, adapter, job)
            active.settled_at_provider = True
            await self._settle(task, adapter, status)
        finally:
            self._metrics.tasks_running.dec()

    async def _settle(self, task: Task, adapter: MusicAdapter, status: MusicStatus) -> None:
        if status.state == "succeeded":
            await self._poller.succeed(task, adapter, status)
        elif status.state == "failed":
            error = status.error or UpstreamError("server", "The provider's job failed.")
            await self._outcomes.fail(task, from_upstream(error))
        else:  # canceled at the provider's side
            await self._outcomes.finish(task, {"status": "canceled"})
