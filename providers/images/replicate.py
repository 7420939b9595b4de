"""Image adapter for FLUX on Replicate (``black-forest-labs/flux-schnell``, ``flux-dev``,
``flux-kontext-pro`` and the like), through the predictions API of
``providers.hosted.replicate_api``.

``generate`` creates one prediction for the request (``num_outputs`` images; with the option
``prefer_wait_s``, Replicate holds the create call open that long, as ``Prefer: wait``), polls
it every ``poll_interval_s`` until it succeeded, failed or was canceled, within the provider's
``total_timeout_s``, then downloads each output URL (bounded by ``max_download_bytes``), so a
client never sees a Replicate URL. When ``generate`` ends before the prediction did (the client
left, the deadline passed), the prediction is canceled.

The FLUX inputs, as the models' pages on replicate.com document them: ``prompt``,
``aspect_ratio`` (from the size: the size picks the ratio, the model its ~1 MP of pixels),
``num_outputs`` (1-4), ``output_format`` (``png``, ``jpg``, ``webp``), ``output_quality``
(from ``output_compression``), ``seed``; for image-to-image the first input image as a data URL
in ``image`` (flux-dev, with ``prompt_strength`` from ``strength``) or ``input_image``
(Kontext, which makes one image and matches the input's ratio when the size is ``auto``).
Masks and transparent backgrounds are not offered.

Options (``ProviderSettings.options``, besides the transport's):
  poll_interval_s   seconds between polls (default 1)
  prefer_wait_s     0 (default): create and poll; 1-60: ``Prefer: wait=N`` on create
  image_fields      model -> the input that takes the image, for models this module does not
                    know (default ``image``; Kontext models ``input_image``)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from providers.base import JSON, ProviderSettings, UpstreamError, read_options
from providers.hosted.replicate_api import (
    PENDING_STATUSES,
    ReplicateApi,
    data_url,
    failure_error,
    parse_model_ref,
    prediction_urls,
)
from providers.http.values import UpstreamOptions
from providers.images.base import ImageOutput, ImageRequest
from providers.images.polling import DEFAULT_POLL_INTERVAL_S, fetch_output, poll_or_cancel

# The sizes offered, each as the FLUX aspect ratio that makes it (at about one megapixel).
ASPECT_RATIOS = {
    "1024x1024": "1:1",
    "1536x1024": "3:2",
    "1024x1536": "2:3",
    "1344x768": "16:9",
    "768x1344": "9:16",
    "1024x768": "4:3",
    "768x1024": "3:4",
    "1280x1024": "5:4",
    "1024x1280": "4:5",
}
OUTPUT_FORMATS = {"png": "png", "jpeg": "jpg", "webp": "webp"}  # FLUX says "jpg"
MAX_OUTPUTS = 4
KONTEXT_FIELD = "input_image"
# The input names of the FLUX models, so that a failure naming one blames the request.
_INPUT_NAMED = re.compile(
    r"\binputs?\b|prompt|aspect_ratio|num_outputs|output_format|output_quality|seed|image",
    re.IGNORECASE,
)


@dataclasses.dataclass(frozen=True, slots=True)
class ReplicateImageOptions(UpstreamOptions):
    """The image options of the ``replicate`` kind (listed in the module docstring)."""

    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S
    prefer_wait_s: int = 0
    image_fields: Mapping[str, str] = dataclasses.field(default_factory=dict)


def image_field(upstream_model: str, overrides: Mapping[str, str]) -> str:
    """The input that takes the image to edit: the operator's choice, else Kontext's own name."""
    model = upstream_model.split(":", 1)[0]
    if model in overrides:
        return overrides[model]
    return KONTEXT_FIELD if "kontext" in model.lower() else "image"


def build_input(request: ImageRequest, field: str, image_url: str | None) -> JSON:
    """The FLUX ``input`` object of one request."""
    body: JSON = {"prompt": request.prompt, "output_format": OUTPUT_FORMATS[request.output_format]}
    ratio = ASPECT_RATIOS.get(request.size)
    if ratio is not None:
        body["aspect_ratio"] = ratio
    elif image_url is not None and field == KONTEXT_FIELD:
        body["aspect_ratio"] = "match_input_image"
    if field == KONTEXT_FIELD:
        if request.n > 1:
            raise UpstreamError(
                "client_error", "This model makes one image per request.", param="n"
            )
    else:
        body["num_outputs"] = request.n
    if request.seed is not None:
        body["seed"] = request.seed
    if request.output_compression is not None and request.output_format != "png":
        body["output_quality"] = request.output_compression
    if image_url is not None:
        body[field] = image_url
        if request.strength is not None and field != KONTEXT_FIELD:
            body["prompt_strength"] = request.strength
    return body


def output_urls(prediction: JSON) -> list[str]:
    """A succeeded prediction's image URLs: FLUX answers a list, some models one string."""
    output: Any = prediction.get("output")
    found = [output] if isinstance(output, str) else output if isinstance(output, list) else []
    urls = [
        u for u in found if isinstance(u, str) and u.startswith(("http://", "https://", "data:"))
    ]
    if prediction.get("data_removed") or not urls:
        raise UpstreamError("server", "The provider finished without an image.")
    return urls


class ReplicateImagesAdapter:
    """FLUX text-to-image and image-to-image on Replicate; ``base_url`` is the host root."""

    kind: ClassVar[str] = "replicate"
    sizes = frozenset({"auto", *ASPECT_RATIOS})
    formats = frozenset(OUTPUT_FORMATS)
    max_n = MAX_OUTPUTS
    supports_edit = True
    supports_mask = False
    supports_transparency = False
    needs_base_url: ClassVar[bool] = True
    Options: ClassVar[type[ReplicateImageOptions]] = ReplicateImageOptions

    def __init__(self, settings: ProviderSettings) -> None:
        options = read_options(self.Options, settings.options)
        self._api = ReplicateApi(settings, options)
        self._poll_interval = options.poll_interval_s
        self._prefer_wait = options.prefer_wait_s
        self._image_fields = dict(options.image_fields)
        self._timeout = settings.total_timeout

    async def start(self) -> None:
        await self._api.start()

    async def close(self) -> None:
        await self._api.close()

    async def generate(self, request: ImageRequest) -> list[ImageOutput]:
        ref = parse_model_ref(request.upstream_model)
        field = image_field(request.upstream_model, self._image_fields)
        image_url = None
        if request.images:
            first = request.images[0]
            image_url = data_url(first.content_type, first.data)
        model_input = build_input(request, field, image_url)
        prediction = await self._api.create(
            ref, model_input, request.request_id, self._prefer_wait or None
        )
        prediction = await self._finished(prediction)
        status = prediction["status"]
        if status == "failed":
            raise failure_error(prediction.get("error"), self._api.http.scrubber, _INPUT_NAMED)
        if status != "succeeded":  # canceled elsewhere, or aborted before it started
            raise UpstreamError("server", f"The provider's prediction ended {status}.")
        return [
            await fetch_output(url, self._api.download)
            for url in output_urls(prediction)[: request.n]
        ]

    async def _finished(self, prediction: JSON) -> JSON:
        """The prediction once it left ``starting`` and ``processing``; canceled upstream if
        this ends any other way."""
        get_url, cancel_url = prediction_urls(prediction, self._api.prefix)
        job_id = str(prediction["id"])
        latest = prediction

        async def finished() -> bool:
            nonlocal latest
            if latest["status"] in PENDING_STATUSES:
                latest = await self._api.get(get_url, job_id)
            return latest["status"] not in PENDING_STATUSES

        await poll_or_cancel(
            finished,
            self._poll_interval,
            self._timeout,
            lambda: self._api.cancel(cancel_url, job_id),
        )
        return latest
