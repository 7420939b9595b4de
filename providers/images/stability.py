"""Image adapter for Stability AI's Stable Image API (v2beta), the ``stability`` kind's images.

Each image is one synchronous multipart ``POST {base_url}{image_api_path}/{endpoint}``
(``base_url`` is the host root, ``https://api.stability.ai``, as for Stable Audio), the
endpoint chosen by the deployment's upstream model:

- ``core`` (or ``stable-image-core``): Stable Image Core, text-to-image only;
- ``ultra`` (or ``stable-image-ultra``): Stable Image Ultra, text-to-image, or image-to-image
  with the file part ``image`` and ``strength``;
- ``sd3`` or ``sd3.5-*`` (``sd3.5-large``, ``sd3.5-large-turbo``, ``sd3.5-medium``...):
  ``/sd3`` with the model in the ``model`` field (plain ``sd3``: Stability's default model),
  ``mode=image-to-image`` with ``image`` and ``strength`` for an edit. It makes PNG or JPEG.

Fields: ``prompt``, ``output_format``, ``aspect_ratio`` from the asked size (text-to-image only:
image-to-image keeps the input's shape), ``seed``. ``accept: image/*`` answers the raw image
(a third smaller than the base64 JSON) with the header ``finish-reason``: ``CONTENT_FILTERED``
is the request's fault, reported as a client error like any other moderation refusal.

Stability picks the pixel count itself (about a megapixel), so a size names an aspect ratio:
the declared sizes are the ones whose ratio is one of Stability's. Stability makes one image
per call, so ``n`` images are ``n`` calls made together, image ``i`` with ``seed + i`` when a
seed is given (the images differ; the whole request is reproducible). There is no mask, no
transparent background, and no ``quality`` or ``output_compression`` field.

Options (``[providers.NAME.options]``, shared with the music adapter, hence the ``image_``
prefix): ``image_api_path``, ``image_sizes``, ``image_formats``, ``image_max_n``, and
``image_strength``, the strength of an edit that does not give one (Stability requires it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Mapping
from typing import ClassVar

from providers.base import ProviderSettings, UpstreamError, read_options
from providers.http.upstream import HttpUpstream
from providers.http.values import FormBytes
from providers.images.base import (
    FORMATS,
    DeclaredImageOptions,
    ImageOutput,
    ImageRequest,
    declared_images,
    dimensions,
    file_part,
    provider_image,
)
from providers.shared_wire import check_stability_reply, stability_headers
from providers.shared_wire import stability_error as error_from_response

DEFAULT_API_PATH = "/v2beta/stable-image/generate"
ASPECT_RATIOS = frozenset({"16:9", "1:1", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21"})
DEFAULT_SIZES = (
    "auto",
    "1024x1024",
    "1536x1024",
    "1024x1536",
    "1280x1024",
    "1024x1280",
    "1920x1080",
    "1080x1920",
)
DEFAULT_MAX_N = 4
MAX_SEED = 4_294_967_294  # Stability's largest; 0 asks it for a random seed
DEFAULT_STRENGTH = 0.5
SD3_FORMATS = frozenset({"png", "jpeg"})
ENDPOINTS = {
    "core": "/core",
    "stable-image-core": "/core",
    "ultra": "/ultra",
    "stable-image-ultra": "/ultra",
}


def aspect_ratio(size: str) -> str | None:
    """``"1536x1024"`` -> ``"3:2"``; None for ``auto``; a ratio Stability lacks -> ValueError."""
    sides = dimensions(size)
    if sides is None:
        return None
    width, height = sides
    common = math.gcd(width, height)
    ratio = f"{width // common}:{height // common}"
    # 21:9 and 9:21 reduce to 7:3 and 3:7.
    ratio = {"7:3": "21:9", "3:7": "9:21"}.get(ratio, ratio)
    if ratio not in ASPECT_RATIOS:
        raise ValueError(f"{size} has no Stability aspect ratio")
    return ratio


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    """Where a model's requests go: the endpoint under the API path, and the ``model`` field."""

    endpoint: str
    model: str | None = None

    @property
    def edits(self) -> bool:
        return self.endpoint != "/core"

    @property
    def formats(self) -> frozenset[str]:
        return SD3_FORMATS if self.endpoint == "/sd3" else frozenset(FORMATS)


def route(upstream_model: str) -> Route:
    name = upstream_model.strip().lower()
    if name in ENDPOINTS:
        return Route(ENDPOINTS[name])
    if name == "sd3":
        return Route("/sd3")
    if name.startswith("sd3"):
        return Route("/sd3", upstream_model.strip())
    raise UpstreamError(
        "server",
        "The deployment's Stability image model is not core, ultra or an sd3 model.",
    )


def build_form(
    request: ImageRequest, target: Route, seed: int | None, default_strength: float
) -> tuple[list[tuple[str, str]], list[FormBytes]]:
    """One call's text fields and file parts."""
    if request.output_format not in target.formats:
        raise UpstreamError(
            "client_error",
            f"This model makes {', '.join(sorted(target.formats))}, not {request.output_format}.",
            param="output_format",
        )
    form = [("prompt", request.prompt), ("output_format", request.output_format)]
    if target.model is not None:
        form.append(("model", target.model))
    if seed is not None:
        form.append(("seed", str(seed)))
    files: list[FormBytes] = []
    if request.images:
        if not target.edits:
            raise UpstreamError(
                "client_error", "Stable Image Core does not edit images.", param="image"
            )
        if len(request.images) > 1:
            raise UpstreamError(
                "client_error", "Stability edits one input image at a time.", param="image"
            )
        if target.endpoint == "/sd3":
            form.append(("mode", "image-to-image"))
        strength = default_strength if request.strength is None else request.strength
        form.append(("strength", f"{strength:g}"))
        files.append(file_part("image", "image", request.images[0]))
    else:
        ratio = aspect_ratio(request.size)
        if ratio is not None:
            form.append(("aspect_ratio", ratio))
    return form, files


def parse_image_reply(headers: Mapping[str, str], body: bytes, output_format: str) -> ImageOutput:
    """Check a 200 answer finished and really is an image of the asked format."""
    check_stability_reply(headers, "image", finished="the image", missing="an image")
    return provider_image(body, output_format)


@dataclasses.dataclass(frozen=True, slots=True)
class StabilityImageOptions(DeclaredImageOptions):
    """The image options of the ``stability`` kind."""

    image_api_path: str = DEFAULT_API_PATH
    image_sizes: tuple[str, ...] = DEFAULT_SIZES
    image_max_n: int = DEFAULT_MAX_N
    image_strength: float = DEFAULT_STRENGTH


class StabilityImagesAdapter:
    """Images through Stable Image Core, Ultra and SD3; ``base_url`` is the host root."""

    kind: ClassVar[str] = "stability"
    supports_edit = True
    supports_mask = False
    supports_transparency = False
    needs_base_url: ClassVar[bool] = True
    Options: ClassVar[type[StabilityImageOptions]] = StabilityImageOptions

    def __init__(self, settings: ProviderSettings) -> None:
        options = read_options(self.Options, settings.options)
        owner = f"provider {settings.name}"
        self.sizes, self.formats, self.max_n = declared_images(options, owner)
        for size in self.sizes:
            try:
                aspect_ratio(size)
            except ValueError as exc:
                raise ValueError(f"{owner}: image_sizes: {exc}") from None
        if not 0 <= options.image_strength <= 1:
            raise ValueError(f"{owner}: image_strength must be from 0 to 1")
        self._api_path = options.image_api_path.rstrip("/")
        self._strength = options.image_strength
        headers = stability_headers("image/*", settings.api_key)
        self._http = HttpUpstream(settings, headers, options)

    async def start(self) -> None:
        await self._http.start()

    async def close(self) -> None:
        await self._http.close()

    async def generate(self, request: ImageRequest) -> list[ImageOutput]:
        target = route(request.upstream_model)
        calls = [
            asyncio.ensure_future(self._one(request, target, index)) for index in range(request.n)
        ]
        try:
            return list(await asyncio.gather(*calls))
        finally:
            # The first failure (or a cancel) ends the request: stop the other calls too.
            for call in calls:
                call.cancel()
            await asyncio.gather(*calls, return_exceptions=True)

    async def _one(self, request: ImageRequest, target: Route, index: int) -> ImageOutput:
        seed = None if request.seed is None else (request.seed + index) % (MAX_SEED + 1)
        form, files = build_form(request, target, seed, self._strength)
        reply = await self._http.send(
            "POST",
            self._api_path + target.endpoint,
            error_from_response,
            headers={"x-request-id": request.request_id},
            form=form,
            files=files,
        )
        return parse_image_reply(reply.headers, reply.body, request.output_format)
