"""The offline ``local`` image model: the painter of ``paint`` behind the images contract.

It needs no network and no keys, so the embedded default configuration can serve images. Each
render runs in a worker thread (``asyncio.to_thread``), so the event loop keeps serving. Image
``i`` of a request of ``n`` is painted with seed ``seed + i`` (``i`` alone without a seed), so
the images differ from each other and the request as a whole is still reproducible.

Text-to-image: ``paint.plan`` reads the prompt, ``paint.paint`` draws it. Image-to-image: the
first input image, fitted to the size (``auto``: its own size, within 2048 on a side), is
stylised after the prompt with ``strength`` (default 0.5); further input images lend their
dominant colours to the palette; a mask limits the edit to its transparent pixels.

Options (``ProviderSettings.options``):
  render_delay_s  an extra pause in seconds before rendering (default 0), so tests can hold a
                  local image task in "running" to exercise cancellation
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from providers.base import ProviderSettings, UpstreamError, read_options
from providers.images.base import (
    MEDIA_TYPES,
    ImageOutput,
    ImageRequest,
    dimensions,
    open_image,
)

if TYPE_CHECKING:
    from PIL import Image

SIZES = frozenset({"auto", "256x256", "512x512", "1024x1024", "1536x1024", "1024x1536"})
DEFAULT_SIZE = (1024, 1024)
MAX_SIDE = 2048
MIN_SIDE = 16
DEFAULT_STRENGTH = 0.5
# The encoder's quality per requested ``quality`` (``output_compression`` overrides it).
QUALITY = {"low": 55, "medium": 75, "high": 92, "auto": 85, "standard": 80, "hd": 92}


@dataclass(frozen=True, slots=True)
class LocalImageOptions:
    render_delay_s: float = 0.0


def _fit(size: tuple[int, int]) -> tuple[int, int]:
    """An input's own size, scaled down to fit ``MAX_SIDE`` and up to ``MIN_SIDE``."""
    width, height = size
    scale = min(1.0, MAX_SIDE / max(width, height))
    return max(MIN_SIDE, round(width * scale)), max(MIN_SIDE, round(height * scale))


def render(request: ImageRequest) -> list[ImageOutput]:
    """Every image of a request, synchronously (the adapter runs this in a thread)."""
    # Pillow and the painter load on the first image, not at start: a gateway that serves no
    # images keeps their ~10 MB out of its resident memory.
    from PIL import Image

    from providers.images.paint import dominant, encode, paint, plan, stylise

    asked = dimensions(request.size)
    transparent = request.background == "transparent"
    quality = request.output_compression
    if quality is None:
        quality = QUALITY.get(request.quality, QUALITY["auto"])
    base: Image.Image | None = None
    extra: list[tuple[int, int, int]] = []
    mask: Image.Image | None = None
    if request.images:
        base = open_image(request.images[0].data)
        for other in request.images[1:]:
            extra.extend(dominant(open_image(other.data)))
        if request.mask is not None:
            mask = open_image(request.mask.data)
    size = asked or (_fit(base.size) if base is not None else DEFAULT_SIZE)
    fitted = None if base is None else base.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    outputs: list[ImageOutput] = []
    for index in range(request.n):
        seed = index if request.seed is None else request.seed + index
        scene = plan(request.prompt, seed)
        if fitted is None:
            image = paint(scene, size, transparent)
        else:
            strength = DEFAULT_STRENGTH if request.strength is None else request.strength
            image = stylise(fitted, scene, strength, extra, mask)
        data = encode(image, request.output_format, quality)
        outputs.append(
            ImageOutput(data, MEDIA_TYPES[request.output_format], scene.describe(request.prompt))
        )
    return outputs


class LocalImagesAdapter:
    """Offline images: deterministic PNG, JPEG or WebP from the prompt, seed and input."""

    kind: ClassVar[str] = "local"
    sizes = SIZES
    formats = frozenset({"png", "jpeg", "webp"})
    max_n = 4
    supports_edit = True
    supports_mask = True
    supports_transparency = True
    needs_base_url: ClassVar[bool] = False  # offline: nothing to connect to
    Options: ClassVar[type[LocalImageOptions]] = LocalImageOptions

    def __init__(self, settings: ProviderSettings) -> None:
        self._render_delay = read_options(self.Options, settings.options).render_delay_s

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def generate(self, request: ImageRequest) -> list[ImageOutput]:
        if self._render_delay > 0:
            await asyncio.sleep(self._render_delay)  # before rendering: a cancel costs no CPU
        try:
            return await asyncio.to_thread(render, request)
        except UpstreamError:
            raise
        except Exception as exc:  # a painter bug must still leave as UpstreamError
            raise UpstreamError("server", "The local image model failed.") from exc
