"""Downloading a finished job's audio (or an image task's images) into an artifact (the
runner's last step).

Providers' result URLs expire, so the bytes are copied at once: streamed block by block into a
pending artifact file, typed by their first bytes (the provider's content type is the fallback),
and published under the task's owner. A retryable download failure is tried again a few times.
"""

from __future__ import annotations

import asyncio

from gateway.artifacts.files import Artifacts
from gateway.artifacts.media import EXTENSIONS, SNIFF_BYTES, sniff_audio
from gateway.stores.base import Artifact, Task
from providers.base import UpstreamError
from providers.images.base import EXTENSIONS as IMAGE_EXTENSIONS
from providers.music.base import MusicAdapter, MusicOutput

DOWNLOAD_ATTEMPTS = 3


async def store_output(
    artifacts: Artifacts,
    task: Task,
    adapter: MusicAdapter,
    output: MusicOutput,
    index: int,
    *,
    retry_wait_s: float,
) -> Artifact:
    for attempt in range(DOWNLOAD_ATTEMPTS):
        pending = artifacts.begin()
        head = b""
        try:
            async for block in adapter.download(output):
                if len(head) < SNIFF_BYTES:
                    head += block[: SNIFF_BYTES - len(head)]
                await pending.write(block)
            if not pending.size:
                raise UpstreamError("server", "The provider's audio file was empty.")
            content_type = sniff_audio(head) or output.content_type
            extension = EXTENSIONS.get(content_type) or IMAGE_EXTENSIONS.get(content_type, "bin")
            return await artifacts.publish(
                pending,
                owner=task.owner,
                kind="output",
                filename=f"{task.task_id}-{index}.{extension}",
                content_type=content_type,
                # Images have none; audio has the provider's or the asked duration.
                duration_seconds=output.duration_seconds or task.params.get("duration_seconds"),
                task_id=task.task_id,
            )
        except UpstreamError as error:
            if not error.retryable or attempt + 1 == DOWNLOAD_ATTEMPTS:
                raise
            await asyncio.sleep(retry_wait_s * (attempt + 1))
        finally:
            pending.discard()
    raise AssertionError("unreachable")
