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
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from gateway.artifacts import Artifacts
from gateway.errors import GatewayError
from gateway.media import EXTENSIONS, sniff_audio
from gateway.metrics import Metrics
from gateway.relay import to_gateway_error
from gateway.settings import TaskSettings
from gateway.stores.base import Artifact, Task, TaskStore
from providers.base import UpstreamError
from providers.music_base import (
    TERMINAL_STATES,
    MusicAdapter,
    MusicJob,
    MusicOutput,
    MusicRequest,
    MusicStatus,
    ReferenceAudio,
)

UNFINISHED = frozenset({"queued", "running"})
RUNNING = frozenset({"running"})
PROVIDER_CANCEL_TIMEOUT_S = 10.0
DRAIN_CANCEL_TIMEOUT_S = 2.0
DOWNLOAD_ATTEMPTS = 3
_SUBMIT_FALLBACK_KINDS = frozenset({"connect", "rate_limited"})  # the provider took nothing
_log = structlog.get_logger("beatra.tasks")

INTERRUPTED = {
    "code": "service_unavailable",
    "message": "The gateway stopped while this task was running. It was not resubmitted "
    "(a paid job is never started twice); create a new task to try again.",
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
    ) -> None:
        self._store = store
        self._artifacts = artifacts
        self._adapters = adapters
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._rng = rng
        self._group: asyncio.TaskGroup | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._exit = contextlib.AsyncExitStack()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._active: dict[str, _Active] = {}
        self._slots = asyncio.Semaphore(settings.max_running)
        self._draining = False

    # -- lifespan ---------------------------------------------------------------------------

    async def start(self, sweep_interval_s: float, task_retention_s: float) -> None:
        self._group = await self._exit.enter_async_context(asyncio.TaskGroup())
        self._sweeper = self._group.create_task(
            self._sweep_forever(sweep_interval_s, task_retention_s)
        )

    async def stop(self) -> None:
        """Interrupt every task still running (recorded as such), then close the group."""
        self._draining = True
        for running in list(self._running.values()):
            running.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
        await self._exit.aclose()
        self._group = None
        for task in await self._store.unfinished():
            if task.task_id in self._active or task.status == "queued":
                await self._interrupted(task.task_id)

    def launch(self, task: Task) -> None:
        if self._group is None or self._draining:
            raise GatewayError("service_unavailable", "The gateway is shutting down.")
        self._active[task.task_id] = _Active()
        self._running[task.task_id] = self._group.create_task(self._drive(task))

    # -- cancel -----------------------------------------------------------------------------

    async def cancel(self, task: Task) -> Task:
        """Make ``task`` canceled now; stop its job here and at the provider."""
        now = int(self._artifacts.now())
        changes = {"status": "canceled", "updated_at": now, "finished_at": now}
        updated = await self._store.update(task.task_id, UNFINISHED, changes)
        if updated is None:
            raise GatewayError("task_not_cancelable", "The task has already finished.")
        self._metrics.tasks.labels(task.type, "canceled").inc()
        running = self._running.get(task.task_id)
        if running is not None:
            running.cancel()
        return updated

    # -- one task ---------------------------------------------------------------------------

    async def _drive(self, task: Task) -> None:
        # Nothing but cancellation may escape: an exception would tear down the task group.
        active = self._active[task.task_id]
        try:
            try:
                async with self._slots:
                    await self._work(task, active)
            except asyncio.CancelledError:
                if self._draining:
                    await self._interrupted(task.task_id)
                await self._cancel_at_provider(active)
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
            self._running.pop(task.task_id, None)
            self._active.pop(task.task_id, None)

    async def _work(self, task: Task, active: _Active) -> None:
        adapter, job, target = await self._submit(task, active)
        self._metrics.tasks_running.inc()
        try:
            now = int(self._artifacts.now())
            started = await self._store.update(
                task.task_id,
                frozenset({"queued"}),
                {
                    "status": "running",
                    "updated_at": now,
                    "model": target["model"],
                    "provider": target["provider"],
                    "job": {"job_id": job.job_id, "data": job.data},
                },
            )
            if started is None:
                raise _StopSignal  # canceled while the provider was taking the job
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
                stored.append(await self._store_output(task, adapter, output, index))
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

    async def _store_output(
        self, task: Task, adapter: MusicAdapter, output: MusicOutput, index: int
    ) -> Artifact:
        for attempt in range(DOWNLOAD_ATTEMPTS):
            pending = self._artifacts.begin()
            head = b""
            try:
                async for block in adapter.download(output):
                    if not head:
                        head = block[:64]
                    await pending.write(block)
                if not pending.size:
                    raise UpstreamError("server", "The provider's audio file was empty.")
                content_type = sniff_audio(head) or output.content_type
                record = await self._artifacts.publish(
                    pending,
                    owner=task.owner,
                    kind="output",
                    filename=f"{task.task_id}-{index}.{EXTENSIONS.get(content_type, 'bin')}",
                    content_type=content_type,
                    duration_seconds=output.duration_seconds or task.params["duration_seconds"],
                    task_id=task.task_id,
                )
                self._metrics.artifact_bytes.labels("output").inc(record.bytes)
                return record
            except UpstreamError as error:
                if not error.retryable or attempt + 1 == DOWNLOAD_ATTEMPTS:
                    raise
                await asyncio.sleep(self._settings.poll_initial_s * (attempt + 1))
            finally:
                pending.discard()
        raise AssertionError("unreachable")

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
