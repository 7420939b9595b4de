"""The task runner: the one owner of background work, living in the application's lifespan.

For each task it submits the job to a provider (falling to the next deployment only when the
provider certainly did not take it: connection refused or 429), polls with backoff, jitter and
the provider's Retry-After until a terminal state or the deadline, downloads the results into
artifacts (providers' URLs expire), and records each step in the task store. Every write after
submission expects the task to be ``running``, so a cancel is final the moment it is stored and a
result arriving afterwards is discarded (its artifacts deleted).

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
from dataclasses import dataclass
from typing import Any

import structlog

from gateway.artifacts.files import Artifacts
from gateway.config.settings import TaskSettings
from gateway.contract.errors import GatewayError
from gateway.contract.errors import from_upstream as to_gateway_error
from gateway.metrics import Metrics
from gateway.stores.base import Artifact, Task, TaskStore
from gateway.tasks.outputs import store_output
from providers.base import UpstreamError
from providers.music.base import (
    TERMINAL_STATES,
    MusicAdapter,
    MusicJob,
    MusicRequest,
    MusicStatus,
    ReferenceAudio,
)

UNFINISHED = frozenset({"queued", "running"})
RUNNING = frozenset({"running"})
PROVIDER_CANCEL_TIMEOUT_S = 10.0
DRAIN_CANCEL_TIMEOUT_S = 2.0
_SUBMIT_FALLBACK_KINDS = frozenset({"connect", "rate_limited"})  # the provider took nothing
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


class _StopSignal(Exception):  # noqa: N818 - a signal, not an error
    """The task ended without a result of ours to record (canceled elsewhere, or lost)."""


@dataclass(slots=True)
class _Active:
    adapter: MusicAdapter | None = None
    job: MusicJob | None = None
    settled_at_provider: bool = False  # the provider reported a terminal state
    lease_lost: bool = False  # another replica drives the task now
    drive: asyncio.Task[None] | None = None  # the coroutine driving the task here

    def stop(self) -> None:
        if self.drive is not None:
            self.drive.cancel()

    @property
    def pollable(self) -> bool:
        """A job at the provider that another replica could go on polling."""
        return self.job is not None and self.job.done is None and not self.settled_at_provider


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
        self._active: dict[str, _Active] = {}  # the tasks this replica drives
        self._slots = asyncio.Semaphore(settings.max_running)
        self._draining = False

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
                await self._interrupted(task.task_id)

    def launch(self, task: Task) -> None:
        if self._group is None or self._draining:
            raise GatewayError("service_unavailable", "The gateway is shutting down.")
        active = self._active[task.task_id] = _Active()
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

    async def _drive(self, task: Task, active: _Active) -> None:
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
            except _StopSignal:
                await self._cancel_at_provider(active)
            except (UpstreamError, GatewayError) as error:
                await self._cancel_at_provider(active)
                failure = to_gateway_error(error) if isinstance(error, UpstreamError) else error
                await self._finish_failed(task, failure)
        except Exception:
            _log.exception("task_crashed", task_id=task.task_id, request_id=task.request_id)
            with contextlib.suppress(Exception):
                await self._finish_failed(task, GatewayError("internal_error"))
        finally:
            if watcher is not None:
                watcher.cancel()
            if not active.lease_lost:
                with contextlib.suppress(Exception):
                    await self._store.release_lease(task.task_id, self._holder)
            self._active.pop(task.task_id, None)

    async def _stopped(self, task: Task, active: _Active) -> None:
        """The drive was canceled: by the client, by shutdown, or because the lease was lost."""
        if active.lease_lost:
            return  # another replica drives the task now: leave everything to it
        if self._draining and self._shared and active.pollable:
            return  # its lease is released; another replica goes on polling the job
        if self._draining:
            await self._interrupted(task.task_id)
        await self._cancel_at_provider(active)

    async def _watch(self, task_id: str, active: _Active) -> None:
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

    async def _work(self, task: Task, active: _Active) -> None:
        resumed = await self._resume(task, active)
        if resumed is not None:
            adapter, job = resumed
        else:
            adapter, job = await self._start(task, active)
        self._metrics.tasks_running.inc()
        try:
            status = job.done or await self._poll(task, adapter, job)
            active.settled_at_provider = True
            if status.state == "succeeded":
                await self._succeed(task, adapter, status)
            elif status.state == "failed":
                error = status.error or UpstreamError("server", "The provider's job failed.")
                await self._finish_failed(task, to_gateway_error(error))
            else:  # canceled at the provider's side
                await self._finish(task, {"status": "canceled"})
        finally:
            self._metrics.tasks_running.dec()

    async def _resume(self, task: Task, active: _Active) -> tuple[MusicAdapter, MusicJob] | None:
        """A task another driver already submitted: go on polling its job, or give up on it."""
        current = await self._store.get(task.task_id)
        if current is None or current.status not in UNFINISHED:
            raise _StopSignal
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

    async def _start(self, task: Task, active: _Active) -> tuple[MusicAdapter, MusicJob]:
        marked = await self._store.update(
            task.task_id, frozenset({"queued"}), {"job": {"submitting": True}}
        )
        if marked is None:
            raise _StopSignal  # canceled before it started
        adapter, job, target = await self._submit(task, active)
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
            raise _StopSignal  # canceled while the provider was taking the job
        return adapter, job

    async def _submit(
        self, task: Task, active: _Active
    ) -> tuple[MusicAdapter, MusicJob, dict[str, str]]:
        params = task.params
        reference = await self._reference(task)
        plan: list[dict[str, str]] = params["plan"]
        for position, target in enumerate(plan):
            adapter = self._adapters[target["provider"]]
            request = MusicRequest(
                upstream_model=target["upstream_model"],
                request_id=task.request_id,
                task_id=task.task_id,
                prompt=params["prompt"],
                duration_seconds=params["duration_seconds"],
                format=params["format"],
                lyrics=params["lyrics"],
                instrumental=params["instrumental"],
                seed=params["seed"],
                reference=reference,
            )
            active.adapter = adapter
            try:
                job = await adapter.submit(request)
            except UpstreamError as error:
                if error.kind in _SUBMIT_FALLBACK_KINDS and position + 1 < len(plan):
                    _log.warning("task_submit_fallback", task_id=task.task_id, kind=error.kind)
                    continue
                raise
            active.job = job
            return adapter, job, target
        raise AssertionError("a task's plan is never empty")

    async def _reference(self, task: Task) -> ReferenceAudio | None:
        params = task.params
        artifact_id = params.get("reference_artifact_id")
        if not artifact_id:
            return None
        try:
            record = await self._artifacts.lookup(artifact_id, task.owner)
        except GatewayError:
            raise GatewayError("invalid_request", "The reference artifact has expired.") from None
        return ReferenceAudio(
            path=self._artifacts.files.path(record.artifact_id),
            content_type=record.content_type,
            filename=record.filename,
            size=record.bytes,
            mode=params["reference_mode"],
            strength=params.get("reference_strength"),
        )

    async def _poll(self, task: Task, adapter: MusicAdapter, job: MusicJob) -> MusicStatus:
        deadline = self._clock() + self._settings.deadline_s
        delay = self._settings.poll_initial_s
        hint: float | None = None
        progress: float | None = None
        while True:
            wait = max(delay * (0.5 + self._rng.random()), hint or 0.0)
            await asyncio.sleep(max(0.0, min(wait, deadline - self._clock())))
            if self._clock() >= deadline:
                raise UpstreamError("timeout", "The provider did not finish the job in time.")
            current = await self._store.get(task.task_id)
            if current is None or current.status != "running":
                raise _StopSignal  # canceled (possibly by another replica)
            delay = min(delay * 2, self._settings.poll_max_s)
            try:
                status = await adapter.poll(job)
            except UpstreamError as error:
                if not error.retryable:
                    raise
                hint = error.retry_after
                continue
            if status.state in TERMINAL_STATES:
                return status
            hint = status.retry_after
            if status.progress is not None and status.progress != progress:
                progress = status.progress
                await self._store.update(
                    task.task_id,
                    RUNNING,
                    {"progress": progress, "updated_at": int(self._artifacts.now())},
                )

    async def _succeed(self, task: Task, adapter: MusicAdapter, status: MusicStatus) -> None:
        if not status.outputs:
            raise UpstreamError("server", "The provider's job finished without audio.")
        stored: list[Artifact] = []
        try:
            for index, output in enumerate(status.outputs):
                stored.append(
                    await store_output(
                        self._artifacts,
                        task,
                        adapter,
                        output,
                        index,
                        retry_wait_s=self._settings.poll_initial_s,
                    )
                )
                self._metrics.artifact_bytes.labels("output").inc(stored[-1].bytes)
            result = {
                "artifacts": [
                    {
                        "artifact_id": a.artifact_id,
                        "content_type": a.content_type,
                        "bytes": a.bytes,
                        "duration_seconds": a.duration_seconds,
                    }
                    for a in stored
                ]
            }
            if not await self._finish(
                task, {"status": "succeeded", "progress": 1.0, "result": result}
            ):
                raise _StopSignal  # canceled meanwhile: the late result is discarded
        except BaseException:
            for artifact in stored:
                await self._artifacts.remove(artifact.artifact_id)
            raise

    # -- recording outcomes -----------------------------------------------------------------

    async def _finish(self, task: Task, changes: dict[str, Any]) -> bool:
        now = int(self._artifacts.now())
        done = await self._store.update(
            task.task_id, UNFINISHED, {**changes, "updated_at": now, "finished_at": now}
        )
        if done is not None:
            self._metrics.tasks.labels(task.type, changes["status"]).inc()
        return done is not None

    async def _finish_failed(self, task: Task, error: GatewayError) -> None:
        await self._finish(task, {"status": "failed", "error": error_object(error)})

    async def _interrupted(self, task_id: str) -> None:
        now = int(self._artifacts.now())
        changes = {
            "status": "failed",
            "error": dict(INTERRUPTED),
            "updated_at": now,
            "finished_at": now,
        }
        if await self._store.update(task_id, UNFINISHED, changes) is not None:
            _log.warning("task_interrupted", task_id=task_id)

    async def _cancel_at_provider(self, active: _Active) -> None:
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
