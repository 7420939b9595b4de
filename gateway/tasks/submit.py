"""Getting a task's job at a provider: the one already recorded for it, or a new submission
that falls through the task's plan of deployments.

A submission falls to the next deployment only when the provider certainly did not take the
job (connection refused, or 429). The task is marked ``submitting`` first, so a replica taking
over a task whose driver died mid-submission knows the provider may hold a paid job and ends the
task instead of submitting it twice.
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog

from gateway.artifacts.files import Artifacts
from gateway.contract.errors import GatewayError
from gateway.stores.base import Task, TaskStore
from gateway.tasks.active import ActiveTask, StopSignal
from gateway.tasks.image_jobs import FINISHED_IMAGES, ImageJobs, is_image_task
from gateway.tasks.outcomes import INTERRUPTED_MESSAGE, UNFINISHED
from providers.base import UpstreamError
from providers.music.base import MusicAdapter, MusicJob, MusicRequest, ReferenceAudio

_SUBMIT_FALLBACK_KINDS = frozenset({"connect", "rate_limited"})  # the provider took nothing
_QUEUED = frozenset({"queued"})
_log = structlog.get_logger("beatra.tasks")


class Submitter:
    def __init__(
        self,
        store: TaskStore,
        artifacts: Artifacts,
        adapters: Mapping[str, MusicAdapter],
        images: ImageJobs,
    ) -> None:
        self._store = store
        self._artifacts = artifacts
        self._adapters = adapters
        self._images = images

    async def job_for(self, task: Task, active: ActiveTask) -> tuple[MusicAdapter, MusicJob]:
        """The task's job (resumed or newly submitted), also kept on ``active``."""
        resumed = await self._resume(task, active)
        if resumed is not None:
            return resumed
        return await self._start(task, active)

    async def _resume(self, task: Task, active: ActiveTask) -> tuple[MusicAdapter, MusicJob] | None:
        """A task another driver already submitted: go on polling its job, or give up on it."""
        current = await self._store.get(task.task_id)
        if current is None or current.status not in UNFINISHED:
            raise StopSignal
        if current.job is None:
            return None  # never submitted: safe to submit now
        provider = current.provider
        if (
            "job_id" not in current.job
            or provider is None
            or provider not in self._adapters
            or is_image_task(task)  # its images were in the answer of the call that died
        ):
            # The driver died while submitting: the provider may have the job. A paid job is
            # never submitted twice, so the task ends here, saying why.
            raise GatewayError("service_unavailable", INTERRUPTED_MESSAGE)
        adapter = self._adapters[provider]
        job = MusicJob(current.job["job_id"], dict(current.job.get("data") or {}))
        active.adapter, active.job = adapter, job
        _log.info("task_resumed", task_id=task.task_id, job_id=job.job_id)
        return adapter, job

    async def _start(self, task: Task, active: ActiveTask) -> tuple[MusicAdapter, MusicJob]:
        marked = await self._store.update(task.task_id, _QUEUED, {"job": {"submitting": True}})
        if marked is None:
            raise StopSignal  # canceled before it started
        adapter, job, target = await self._submit(task, active)
        started = await self._store.update(
            task.task_id,
            _QUEUED,
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

    async def _submit(
        self, task: Task, active: ActiveTask
    ) -> tuple[MusicAdapter, MusicJob, dict[str, str]]:
        params = task.params
        reference = await self._reference(task)
        plan: list[dict[str, str]] = params["plan"]
        for position, target in enumerate(plan):
            if is_image_task(task):
                adapter: MusicAdapter = FINISHED_IMAGES
                submission = self._images.submit(task, target)
            else:
                adapter = self._adapters[target["provider"]]
                submission = adapter.submit(self._music_request(task, target, reference))
            active.adapter = adapter
            try:
                job = await submission
            except UpstreamError as error:
                if error.kind in _SUBMIT_FALLBACK_KINDS and position + 1 < len(plan):
                    _log.warning("task_submit_fallback", task_id=task.task_id, kind=error.kind)
                    continue
                raise
            active.job = job
            return adapter, job, target
        raise AssertionError("a task's plan is never empty")

    @staticmethod
    def _music_request(
        task: Task, target: dict[str, str], reference: ReferenceAudio | None
    ) -> MusicRequest:
        params = task.params
        return MusicRequest(
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
