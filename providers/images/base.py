"""The contract between the gateway's image endpoints and image adapters.

An image adapter takes one provider-neutral ``ImageRequest`` (already validated against what the
adapter declares it can do: ``sizes``, ``formats``, ``max_n``, edits and masks) and returns the
finished images as bytes. The gateway owns everything around it: routing, limits, artifacts,
tasks and the OpenAI-shaped answer, so a provider's URL never reaches a client. Like the other
adapters, an image adapter sees no client keys or metrics, and every failure leaves it as one
``UpstreamError``.

Decoding client images is security-sensitive (a small file can declare billions of pixels), so
every adapter that opens one goes through ``open_image``: the header's dimensions are checked
against ``MAX_INPUT_PIXELS`` before a single pixel is decoded.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

from providers.base import UpstreamError
from providers.http.values import FormBytes, UpstreamOptions

if TYPE_CHECKING:
    from PIL import Image

FORMATS = ("png", "jpeg", "webp")
MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
# File name extensions of the input types, for the file parts that carry them upstream.
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
# The most pixels an input image may have: 64 MP is above any camera a client would send whole
# and far below what would exhaust memory when decoded (RGBA at 64 MP is 256 MB).
MAX_INPUT_PIXELS = 64_000_000


@dataclass(frozen=True, slots=True)
class InputImage:
    """An image the client sent (a file part or an uploaded artifact), its bytes in memory."""

    data: bytes
    content_type: str


def file_part(field: str, stem: str, image: InputImage) -> FormBytes:
    """``image`` as the multipart file part ``field``, named ``stem`` plus its extension."""
    extension = EXTENSIONS.get(image.content_type, "png")
    return FormBytes(field, image.data, f"{stem}.{extension}", image.content_type)


@dataclass(frozen=True, slots=True)
class ImageRequest:
    """One generation or edit as an adapter receives it."""

    upstream_model: str
    request_id: str
    prompt: str
    n: int
    size: str  # "WxH" from the adapter's ``sizes``, or "auto"
    output_format: str  # one of FORMATS
    quality: str = "auto"  # auto, low, medium, high (and standard/hd for DALL-E)
    background: str = "auto"  # auto, opaque, transparent
    seed: int | None = None
    output_compression: int | None = None  # 0-100, jpeg and webp
    images: tuple[InputImage, ...] = ()  # empty: text-to-image
    mask: InputImage | None = None
    strength: float | None = None  # image-to-image: 0 keeps the input, 1 follows the prompt


@dataclass(frozen=True, slots=True)
class ImageOutput:
    """One finished image."""

    data: bytes
    content_type: str
    revised_prompt: str | None = None


class ImagesAdapter(Protocol):
    """What an adapter that serves ``/v1/images/*`` offers; ``kind`` names it in the config."""

    kind: ClassVar[str]
    sizes: frozenset[str]
    formats: frozenset[str]
    max_n: int
    supports_edit: bool
    supports_mask: bool
    supports_transparency: bool

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def generate(self, request: ImageRequest) -> list[ImageOutput]:
        """``request.n`` images for the prompt (and the input images, for an edit)."""


def sniff_image(head: bytes) -> str | None:
    """The image media type (PNG, JPEG or WebP) of bytes starting with ``head``, or None."""
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if head[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def provider_image(
    data: bytes, output_format: str, revised_prompt: str | None = None
) -> ImageOutput:
    """A provider's image, typed by its own bytes (never by what a header claims). Bytes that
    are not an image, or not of the asked ``output_format`` (the answer names that format), are
    the provider's fault."""
    if not data:
        raise UpstreamError("server", "The provider returned an empty image.")
    content_type = sniff_image(data[:16])
    if content_type is None:
        raise UpstreamError("server", "The provider returned something that is not an image.")
    if content_type != MEDIA_TYPES[output_format]:
        raise UpstreamError(
            "server", f"The provider made {content_type} when {output_format} was asked."
        )
    return ImageOutput(data, content_type, revised_prompt)


_SIZE = re.compile(r"[1-9][0-9]{0,4}x[1-9][0-9]{0,4}")


def declared_sizes(sizes: Iterable[str], owner: str) -> frozenset[str]:
    """The sizes an adapter's options declare, each ``"auto"`` or ``"WxH"`` (ValueError)."""
    found = frozenset(sizes)
    wrong = sorted(size for size in found if size != "auto" and not _SIZE.fullmatch(size))
    if wrong or not found:
        raise ValueError(f'{owner}: image_sizes must be "auto" or "WxH" sizes, not {wrong}')
    return found


def declared_formats(formats: Iterable[str], owner: str) -> frozenset[str]:
    """The output formats an adapter's options declare, each one of ``FORMATS`` (ValueError)."""
    found = frozenset(formats)
    if not found or not found <= set(FORMATS):
        raise ValueError(f"{owner}: image_formats must be some of {', '.join(FORMATS)}")
    return found


def declared_max_n(max_n: int, owner: str) -> int:
    """The most images per request an adapter's options declare: at least 1 (ValueError)."""
    if max_n < 1:
        raise ValueError(f"{owner}: image_max_n must be at least 1")
    return max_n


@dataclass(frozen=True, slots=True)
class DeclaredImageOptions(UpstreamOptions):
    """The options by which an adapter declares what it makes; each adapter sets its own
    defaults. The ``image_`` prefix keeps them apart from the kind's other adapters' options."""

    image_sizes: tuple[str, ...] = ("auto",)
    image_formats: tuple[str, ...] = FORMATS
    image_max_n: int = 1


def declared_images(
    options: DeclaredImageOptions, owner: str
) -> tuple[frozenset[str], frozenset[str], int]:
    """``sizes``, ``formats`` and ``max_n`` as the options declare them (ValueError if wrong)."""
    return (
        declared_sizes(options.image_sizes, owner),
        declared_formats(options.image_formats, owner),
        declared_max_n(options.image_max_n, owner),
    )


def dimensions(size: str) -> tuple[int, int] | None:
    """``"1536x1024"`` -> (1536, 1024); ``"auto"`` -> None."""
    if size == "auto":
        return None
    width, _, height = size.partition("x")
    return int(width), int(height)


def _guard_pillow() -> None:
    """Pillow's own decompression-bomb guard, a second line behind the header check. Pillow is
    imported where it is used, not at start: it costs ~10 MB of resident memory."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_INPUT_PIXELS


def header_size(data: bytes) -> tuple[int, int]:
    """An image's width and height from its header alone (no pixel is decoded)."""
    from PIL import Image

    _guard_pillow()
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception as exc:
        raise UpstreamError(
            "client_error", "An input image could not be read.", param="image"
        ) from exc


def open_image(data: bytes) -> Image.Image:
    """An input image decoded, after its header proved it small enough to decode."""
    width, height = header_size(data)
    if width * height > MAX_INPUT_PIXELS:
        raise UpstreamError("client_error", "An input image has too many pixels.", param="image")
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image.copy()
    except Exception as exc:  # a truncated or corrupt file, or Pillow's own bomb guard
        raise UpstreamError(
            "client_error", "An input image could not be decoded.", param="image"
        ) from exc
