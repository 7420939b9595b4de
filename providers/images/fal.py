"""Image adapter for FLUX on fal.ai (``fal-ai/flux/schnell``, ``fal-ai/flux/dev``,
``fal-ai/flux/dev/image-to-image`` and the like), through the queue of
``providers.hosted.fal_api``.

``generate`` submits one request (``num_images`` images), polls the ``status_url`` fal returned
every ``poll_interval_s`` until it is ``COMPLETED``, within the provider's ``total_timeout_s``,
then reads the ``response_url`` (a failed or canceled job answers its error there) and
downloads each image (bounded by ``max_download_bytes``; data URIs when the model ran in sync
mode), so a client never sees a fal URL. When ``generate`` ends before the job did (the client
left, the deadline passed), the request is canceled with ``PUT cancel_url``.

The inputs, as the FLUX model pages on fal.ai document them: ``prompt``, ``image_size`` (a
named preset such as ``square_hd`` or ``landscape_4_3`` when the size is one, else
``{width, height}``; left out for ``auto``), ``num_images`` (1-4), ``output_format`` (``jpeg``,
``png``), ``seed``; image-to-image takes the first input image as a data URI in ``image_url``
and ``strength``. The result is ``{"images": [{url, width, height, content_type}], seed, ...}``.
Masks, WebP and transparent backgrounds are not offered.

Options (``ProviderSettings.options``, besides the transport's):
  poll_interval_s   seconds between status polls (default 1)
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from providers.base import ProviderSettings, UpstreamError, read_options
from providers.hosted.fal_api import (
    COMPLETED,
    FalQueue,
    data_uri,
    json_object,
    parse_queue_status,
    parse_submit_urls,
)
from providers.http.values import UpstreamOptions
from providers.images.base import ImageOutput, ImageRequest, dimensions
from providers.images.polling import DEFAULT_POLL_INTERVAL_S, fetch_output, poll_or_cancel

# fal's named image sizes; any other offered size goes as {width, height}.
NAMED_SIZES = {
    "1024x1024": "square_hd",
    "512x512": "square",
    "768x1024": "portrait_4_3",
    "576x1024": "portrait_16_9",
    "1024x768": "landscape_4_3",
    "1024x576": "landscape_16_9",
}
SIZES = frozenset({"auto", *NAMED_SIZES, "1536x1024", "1024x1536"})
MAX_IMAGES = 4


@dataclasses.dataclass(frozen=True, slots=True)
class FalImageOptions(UpstreamOptions):
    """The image options of the ``fal`` kind (listed in the module docstring)."""

    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S


def build_input(request: ImageRequest, image_uri: str | None) -> dict[str, Any]:
    """The FLUX model input of one request."""
    body: dict[str, Any] = {
        "prompt": request.prompt,
        "num_images": request.n,
        "output_format": request.output_format,  # "jpeg" or "png", as fal spells them
    }
    asked = dimensions(request.size)
    if asked is not None:
        width, height = asked
        body["image_size"] = NAMED_SIZES.get(request.size) or {"width": width, "height": height}
    if request.seed is not None:
        body["seed"] = request.seed
    if image_uri is not None:
        body["image_url"] = image_uri
        if request.strength is not None:
            body["strength"] = request.strength
    return body


def result_images(raw: bytes) -> list[str]:
    """The URLs (or data URIs) of a successful result's ``images``."""
    images = json_object(raw, "result").get("images")
    items = images if isinstance(images, list) else []
    urls = [item.get("url") for item in items if isinstance(item, dict)]
    found = [url for url in urls if isinstance(url, str) and url]
    if not found:
        raise UpstreamError("server", "The provider's result held no image.")
    return found


class FalImagesAdapter:
    """FLUX text-to-image and image-to-image through fal's queue; ``upstream_model`` is the
    fal model id."""

    kind: ClassVar[str] = "fal"
    sizes = SIZES
    formats = frozenset({"png", "jpeg"})
    max_n = MAX_IMAGES
    supports_edit = True
    supports_mask = False
    supports_transparency = False
    needs_base_url: ClassVar[bool] = True
    Options: ClassVar[type[FalImageOptions]] = FalImageOptions

    def __init__(self, settings: ProviderSettings) -> None:
        options = read_options(self.Options, settings.options)
        self._queue = FalQueue(settings, options)
        self._poll_interval = options.poll_interval_s
        self._timeout = settings.total_timeout

    async def start(self) -> None:
        await self._queue.start()

    async def close(self) -> None:
        await self._queue.close()

    async def generate(self, request: ImageRequest) -> list[ImageOutput]:
        image_uri = None
        if request.images:
            first = request.images[0]
            image_uri = data_uri(first.content_type, first.data)
        reply = await self._queue.submit(request.upstream_model, build_input(request, image_uri))
        _, urls = parse_submit_urls(reply.body)

        async def completed() -> bool:
            status = await self._queue.status(urls["status_url"])
            return parse_queue_status(status.body) == COMPLETED

        await poll_or_cancel(
            completed,
            self._poll_interval,
            self._timeout,
            lambda: self._queue.cancel(urls["cancel_url"]),
        )
        result = await self._queue.result(urls["response_url"])
        return [
            await fetch_output(url, self._queue.download)
            for url in result_images(result.body)[: request.n]
        ]
