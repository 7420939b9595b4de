"""Image tasks (``Prefer: respond-async`` on the image routes) as the runner's jobs.

Every image adapter answers with finished bytes, so an image task is sync behind async, as a
synchronous music provider is: the submission makes the whole call and returns a job that is
already ``done``, and the runner skips polling and stores the images as output artifacts of the
task's owner. Input images (the edit's files, kept as upload artifacts when the task was made,
or an ``image_artifact_id``) are read back from the artifact store by id, so the task's record
alone says everything the call needs.

A generation cannot be resumed by another driver: its images exist only in the answer of the
call that made them. A task whose driver died after submitting therefore ends as interrupted
(see ``gateway.tasks.submit``), and is never generated (and paid for) twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from gateway.artifacts.files import Artifacts
from gateway.contract.errors import GatewayError
from gateway.contract.images_validate import ImageAsk
from gateway.policy.routing import Candidate
from gateway.stores.base import Task
from gateway.tasks.records import queued_task
from providers.base import UpstreamError
from providers.images.base import ImageRequest, ImagesAdapter, InputImage
from providers.music.base import MusicJob, MusicOutput, MusicRequest, MusicStatus

IMAGE_TASK_PREFIX = "image."  # the types "image.generation" and "image.edit"


def is_image_task(task: Task) -> bool:
    return task.type.startswith(IMAGE_TASK_PREFIX)


class FinishedImages:
    """The runner's view of an image job: its outputs are bytes in memory, it has no status to
    poll and nothing to cancel at a provider (cancelling the drive cancels the call)."""

    kind = "images"
    formats: frozenset[str] = frozenset()
    reference_modes: frozenset[str] = frozenset()
    max_duration_seconds = 0.0

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def submit(self, request: MusicRequest) -> MusicJob:
        raise AssertionError("image jobs are submitted by ImageJobs")

    async def poll(self, job: MusicJob) -> MusicStatus:
        raise AssertionError("an image job is done when it is submitted")

    async def cancel(self, job: MusicJob) -> None:
        return None

    async def download(self, output: MusicOutput) -> AsyncIterator[bytes]:
        if output.data:
            yield output.data


FINISHED_IMAGES = FinishedImages()


class ImageJobs:
    """Runs an image task's call on one deployment of its plan."""

    def __init__(self, artifacts: Artifacts, adapters: Mapping[str, ImagesAdapter]) -> None:
        self._artifacts = artifacts
        self._adapters = adapters  # refilled in place when a reload swaps the configuration

    def serves(self, provider: str) -> bool:
        return provider in self._adapters

    async def submit(self, task: Task, target: Mapping[str, str]) -> MusicJob:
        params = task.params
        images = tuple([await self._input(task, i) for i in params.get("image_artifact_ids", ())])
        mask_id = params.get("mask_artifact_id")
        request = ImageRequest(
            upstream_model=target["upstream_model"],
            request_id=task.request_id,
            prompt=params["prompt"],
            n=params["n"],
            size=params["size"],
            output_format=params["output_format"],
            quality=params["quality"],
            background=params["background"],
            seed=params["seed"],
            output_compression=params["output_compression"],
            images=images,
            mask=None if mask_id is None else await self._input(task, mask_id),
            strength=params["strength"],
        )
        adapter = self._adapters.get(target["provider"])
        if adapter is None:  # a reload removed the provider: the plan's next deployment
            raise UpstreamError("connect", "The provider is no longer configured.")
        outputs = await adapter.generate(request)
        done = MusicStatus(
            "succeeded",
            progress=1.0,
            outputs=tuple(MusicOutput(o.content_type, data=o.data) for o in outputs),
        )
        return MusicJob(f"images:{task.task_id}", {}, done=done)

    async def _input(self, task: Task, artifact_id: str) -> InputImage:
        """An input image of the task, read back from the owner's artifacts."""
        try:
            record = await self._artifacts.lookup(artifact_id, task.owner)
        except GatewayError as error:
            raise GatewayError("invalid_request", "An input image of the task is gone.") from error
        return InputImage(await self._artifacts.read_whole(record), record.content_type)


def prefers_async(prefer: bytes | None) -> bool:
    """Whether a ``Prefer`` header (RFC 7240: comma-separated preferences, each maybe with
    ``=value`` and ``;`` parameters) asks for ``respond-async``."""
    if prefer is None:
        return False
    for preference in prefer.split(b","):
        name = preference.split(b";", 1)[0].split(b"=", 1)[0]
        if name.strip().lower() == b"respond-async":
            return True
    return False


def image_task(
    owner: str,
    ask: ImageAsk,
    plan: list[Candidate],
    inputs: tuple[list[str], str | None],
    *,
    request_id: str,
    now: int,
) -> Task:
    """The queued record of an image task: the validated request, its plan of deployments and
    the artifact ids of its input images and mask (``inputs``)."""
    image_ids, mask_id = inputs
    params: dict[str, Any] = {
        "prompt": ask.prompt,
        "n": ask.n,
        "size": ask.size,
        "output_format": ask.output_format,
        "quality": ask.quality,
        "background": ask.background,
        "seed": ask.seed,
        "output_compression": ask.output_compression,
        "strength": ask.strength,
        "image_artifact_ids": image_ids,
        "mask_artifact_id": mask_id,
    }
    task_type = IMAGE_TASK_PREFIX + ask.kind
    return queued_task(owner, task_type, plan, params, request_id=request_id, now=now)
