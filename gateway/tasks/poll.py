"""Following a job at its provider to the end: polling with backoff, jitter and the provider's
Retry-After until a terminal state or the deadline, then copying a success's audio into
artifacts (``gateway.tasks.outputs``) and recording the result.

Each poll first checks the task is still ``running``, so a cancel stored by any replica stops
the polling; a result that arrives after a cancel is discarded with its artifacts.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from gateway.artifacts.files import Artifacts
from gateway.config.settings import TaskSettings
from gateway.metrics import Metrics
from gateway.stores.base import Artifact, Task, TaskStore
from gateway.tasks.active import StopSignal
from gateway.tasks.outcomes import RUNNING, Outcomes
from gateway.tasks.outputs import store_output
from providers.base import UpstreamError
from providers.music.base import TERMINAL_STATES, MusicAdapter, MusicJob, MusicStatus


class Poller:
    def __init__(
        self,
        store: TaskStore,
        artifacts: Artifacts,
        settings: TaskSettings,
        metrics: Metrics,
        outcomes: Outcomes,
        *,
        clock: Callable[[], float],
        rng: random.Random,
    ) -> None:
        self._store = store
        self._artifacts = artifacts
        self._settings = settings
        self._metrics = metrics
        self._outcomes = outcomes
        self._clock = clock
        self._rng = rng

    async def poll(self, task: Task, adapter: MusicAdapter, job: MusicJob) -> MusicStatus:
        """The job's terminal status; the task's progress is recorded on the way."""
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
                raise StopSignal  # canceled (possibly by another replica)
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

    async def succeed(self, task: Task, adapter: MusicAdapter, status: MusicStatus) -> None:
        """Copy a succeeded job's outputs into artifacts and record them as the task's result."""
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
            if not await self._outcomes.finish(
                task, {"status": "succeeded", "progress": 1.0, "result": result}
            ):
                raise StopSignal  # canceled meanwhile: the late result is discarded
        except BaseException:
            for artifact in stored:
                await self._artifacts.remove(artifact.artifact_id)
            raise
