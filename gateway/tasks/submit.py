"""Submitting a task's job: to the first deployment of its plan that takes it.

A submit falls to the next deployment only when the provider certainly took nothing
(connection refused, or 429); any other failure ends the task, because the provider may have
the job and a paid job is never submitted twice.
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog

from gateway.artifacts.files import Artifacts
from gateway.contract.errors import GatewayError
from gateway.stores.base import Task
from gateway.tasks.active import Active
from providers.base import UpstreamError
from providers.music.base import MusicAdapter, MusicJob, MusicRequest, ReferenceAudio

_SUBMIT_FALLBACK_KINDS = frozenset({"connect", "rate_limited"})  # the provider took nothing
_log = structlog.get_logger("beatra.tasks")


class Submitter:
    def __init__(self, adapters: Mapping[str, MusicAdapter], artifacts: Artifacts) -> None:
        self._adapters = adapters
        self._artifacts = artifacts

    async def submit(
        self, task: Task, active: Active
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
