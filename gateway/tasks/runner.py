"""The task runner: the one owner of background work, living in the application's lifespan.

For each task it takes the lease (with several replicas: renewed while it drives the task, and
taken over here from a replica that stopped renewing), submits the job (``submit``: to the next
deployment only when the provider certainly took nothing), follows it to its end and stores its
outputs (``poll``), and records each step in the task store (``outcomes``). Every write after
submission expects the task to be ``running``, so a cancel is final the moment it is stored and
a result arriving afterwards is discarded (its artifacts deleted).

Cancel also stops the job's coroutine and asks the provider to cancel where it can. On shutdown
every unfinished task is marked ``failed`` with a retryable ``service_unavailable`` error that
says it was interrupted: a paid job is never resubmitted automatically.

The periodic sweep of expired artifacts and old task records runs here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import socket
from collections.abc import Callable, Mapping

import structlog

from gateway.artifacts.files import Artifacts
from gateway.config.settings import TaskSettings
from gateway.contract.errors import GatewayError, from_upstream
from gateway.metrics import Metrics
from gateway.stores.base import Task, TaskStore
from gateway.tasks.active import UNFINISHED, Active, StopSignal
from gateway.tasks.outcomes import INTERRUPTED_MESSAGE, Recorder
from gateway.tasks.poll import Poller
from gateway.tasks.submit import Submitter
from providers.base import UpstreamError
from providers.music.base import MusicAdapter, MusicJob

PROVIDER_CANCEL_TIMEOUT_S = 10.0
DRAIN_CANCEL_TIMEOUT_S = 2.0
_log = structlog.get_logger("beatra.tasks")


class TaskRunner:
    def __init__(
        self,
        store: TaskStore,
        artifacts: Artifacts,
        adapters: Mapping[str, MusicAdapter],
        settings: TaskSettings,
        metrics: Metrics,
        *,
        clock: Callable[[], float],
        rng: random.Random,
        shared: bool = False,
        lease_s: float = 15.0,
    ) -> None:
        self._store = store
        # Replicas share the store: leases say who drives a task, and a task whose driver died
        # is taken over (by polling its recorded job, never by submitting it again).
        self._shared = shared
        self._lease_s = lease_s
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._artifacts = artifacts
        self._adapters = adapters
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._rng = rng
        self._group: asyncio.TaskGroup | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._recovery: asyncio.Task[None] | None = None
        self._exit = contextlib.AsyncExitStack()
        self._active: dict[str, Active] = {}  # the tasks this replica drives
        self._slots = asyncio.Semaphore(settings.max_running)
        self._draining = False
        self._recorder = Recorder(store, artifacts, metrics)
        self._submitter = Submitter(adapters, artifacts)
        self._poller = Poller(
            store, artifacts, settings, metrics, self._recorder, clock=clock, rng=rng
        )

    # -- lifespan ---------------------------------------------------------------------------

    async def start(self, sweep_interval_s: float, task_retention_s: float) -> None:
        self._group = await self._exit.enter_async_context(asyncio.TaskGroup())
        self._sweeper = self._group.create_task(
            self._sweep_forever(sweep_interval_s, task_retention_s)
        )
        if self._shared:
            self._recovery = self._group.create_task(self._recover_forever())

    async def stop(self) -> None:
        """Interrupt every task still running (recorded as such), then close the group."""
        self._draining = True
        for active in list(self._active.values()):
            active.stop()
        for background in (self._sweeper, self._recovery):
            if background is not None:
                background.cancel()
        await self._exit.aclose()
        self._group = None
        if not self._shared:
            # Tasks still waiting for a slot were never submitted, but nothing will run them.
            for task in await self._store.unfinished():
                await self._recorder.interrupted(task.task_id)

    def launch(self, task: Task) -> None:
        if self._group is None or self._draining:
            raise GatewayError("service_unavailable", "The gateway is shutting down.")
        active = self._active[task.task_id] = Active()
        active.drive = self._group.create_task(self._drive(task, active))

    # -- cancel -----------------------------------------------------------------------------

    async def cancel(self, task: Task) -> Task:
        """Make ``task`` canceled now; stop its job here and at the provider."""
        now = int(self._artifacts.now())
        changes = {"status": "canceled", "updated_at": now, "finished_at": now}
        updated = await self._store.update(task.task_id, UNFINISHED, changes)
        if updated is None:
            raise GatewayError("task_not_cancelable", "The task has already finished.")
        self._metrics.tasks.labels(task.type, "canceled").inc()
        active = self._active.get(task.task_id)
        if active is not None:
            active.stop()
        return updated

    # -- one task ---------------------------------------------------------------------------

    async def _drive(self, task: Task, active: Active) -> None:
        # Nothing but cancellation may escape: an exception would tear down the task group.
        watcher: asyncio.Task[None] | None = None
        try:
            try:
                if not await self._store.acquire_lease(task.task_id, self._holder, self._lease_s):
                    return  # another replica drives it
                if self._shared:
                    watcher = asyncio.create_task(self._watch(task.task_id, active))
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
                await self._recorder.failed(task, failure)
        except Exception:
            _log.exception("task_crashed", task_id=task.task_id, request_id=task.request_id)
            with contextlib.suppress(Exception):
                await self._recorder.failed(task, GatewayError("internal_error"))
        finally:
            if watcher is not None:
                watcher.cancel()
            if not active.lease_lost:
                with contextlib.suppress(Exception):
                    await self._store.release_lease(task.task_id, self._holder)
            self._active.pop(task.task_id, None)

    async def _stopped(self, task: Task, active: Active) -> None:
        """The drive was canceled: by the client, by shutdown, or because the lease was lost."""
        if active.lease_lost:
            return  # another replica drives the task now: leave everything to it
        if self._draining and self._shared and active.pollable:
            return  # its lease is released; another replica goes on polling the job
        if self._draining:
            await self._recorder.interrupted(task.task_id)
        await self._cancel_at_provider(active)

    async def _watch(self, task_id: str, active: Active) -> None:
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

    async def _recover_forever(self) -> None:
        """Take over unfinished tasks whose driver stopped renewing its lease."""
        while True:
            await asyncio.sleep(self._lease_s / 2)
            try:
                for task in await self._store.unfinished():
                    if task.task_id not in self._active and not self._draining:
                        self.launch(task)  # _drive only proceeds if it wins the lease
            except Exception:
                _log.exception("task_recovery_failed")

    async def _work(self, task: Task, active: Active) -> None:
        resumed = await self._resume(task, active)
        if resumed is not None:
            adapter, job = resumed
        else:
            adapter, job = await self._start(task, active)
        self._metrics.tasks_running.inc()
        try:
            status = job.done or await self._poller.poll(task, adapter, job)
            active.settled_at_provider = True
            if status.state == "succeeded":
                await self._poller.succeed(task, adapter, status)
            elif status.state == "failed":
                error = status.error or UpstreamError("server", "The provider's job failed.")
                await self._recorder.failed(task, from_upstream(error))
            else:  # canceled at the provider's side
                await self._recorder.finish(task, {"status": "canceled"})
        finally:
            self._metrics.tasks_running.dec()

    async def _resume(self, task: Task, active: Active) -> tuple[MusicAdapter, MusicJob] | None:
        """A task another driver already submitted: go on polling its job, or give up on it."""
        current = await self._store.get(task.task_id)
        if current is None or current.status not in UNFINISHED:
            raise StopSignal
        if current.job is None:
            return None  # never submitted: safe to submit now
        provider = current.provider
        if "job_id" not in current.job or provider is None or provider not in self._adapters:
            # The driver died while submitting: the provider may have the job. A paid job is
            # never submitted twice, so the task ends here, saying why.
            raise GatewayError("service_unavailable", INTERRUPTED_MESSAGE)
        adapter = self._adapters[provider]
        job = MusicJob(current.job["job_id"], dict(current.job.get("data") or {}))
        active.adapter, active.job = adapter, job
        _log.info("task_resumed", task_id=task.task_id, job_id=job.job_id)
        return adapter, job

    async def _start(self, task: Task, active: Active) -> tuple[MusicAdapter, MusicJob]:
        marked = await self._store.update(
            task.task_id, frozenset({"queued"}), {"job": {"submitting": True}}
        )
        if marked is None:
            raise StopSignal  # canceled before it started
        adapter, job, target = await self._submitter.submit(task, active)
        started = await self._store.update(
            task.task_id,
            frozenset({"queued"}),
            {
                "status": "running",
                "updated_at": int(self._artifacts.now()),
                "model": target["model"],
                "provider": target["provider"],
                "job": {"job_id": job.job_id, "data": job.data},
            },
        )
        if started is None:
            raise StopSignal  # canceled while the provider was taking the job
        return adapter, job

    async def _cancel_at_provider(self, active: Active) -> None:
        job = active.job
        if active.adapter is None or job is None or job.done is not None:
            return
        if active.settled_at_provider:
            return
        # While draining, shutdown must not wait long on a provider.
        timeout = DRAIN_CANCEL_TIMEOUT_S if self._draining else PROVIDER_CANCEL_TIMEOUT_S
        try:
            async with asyncio.timeout(timeout):
                await active.adapter.cancel(job)
        except (UpstreamError, TimeoutError) as error:
            _log.warning("task_provider_cancel_failed", job_id=job.job_id, error=str(error))

    async def _sweep_forever(self, interval_s: float, task_retention_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self._artifacts.sweep()
                await self._store.prune(self._artifacts.now() - int(task_retention_s))
            except Exception:
                _log.exception("sweep_failed")
