"""Image adapter for OpenAI's Images API and the servers that speak it (the ``openai`` kind).

A generation is ``POST {base_url}/images/generations`` with a JSON body; an edit is ``POST
{base_url}/images/edits`` as multipart, its input images as the file part ``image`` (one) or
``image[]`` (several, as OpenAI's SDKs send a list) and an optional ``mask``, with the same
fields as text. ``base_url`` is the chat adapter's (``https://api.openai.com/v1``): both paths
hang off it as ``/chat/completions`` does.

Two model families answer differently. GPT image models (``gpt-image-*``) always answer base64
and refuse ``response_format``; they take ``size``, ``quality``, ``background``,
``output_format`` and ``output_compression``. DALL-E models (``dall-e-*``) answer a URL unless
asked for ``b64_json``, so the adapter asks; they take none of the GPT fields, only ``standard``
or ``hd`` quality, and always make PNG. Some compatible servers answer ``url`` whatever was
asked: the adapter downloads it (at most ``image_max_download_bytes``; the provider's key goes
only to the provider's own origin), so a client never sees a provider URL. ``revised_prompt``
is kept; ``usage`` is dropped (the gateway does not bill images by token). Each image is typed
by its own bytes, and an image not of the asked format is the provider's fault (so a DALL-E
provider, or a server that ignores ``output_format``, declares ``image_formats = ["png"]``).
The API takes no seed and no strength, so those fields do not reach it.

Images take tens of seconds: the provider's ``read_timeout_s`` must exceed the slowest one
(120 s is safe for gpt-image-1 at high quality).

Options (``[providers.NAME.options]``, shared with the chat adapter, hence the ``image_``
prefix): ``image_sizes``, ``image_formats``, ``image_max_n``, ``image_edits``, ``image_masks``
and ``image_transparency`` declare what the models behind the provider make (defaults:
gpt-image-1's); ``image_ask_b64`` sends ``response_format: "b64_json"`` for every model, for a
compatible server that otherwise answers URLs; ``image_max_download_bytes`` bounds a download.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

import orjson

from providers.base import ProviderSettings, UpstreamError, read_options
from providers.http.upstream import HttpUpstream
from providers.http.values import FormBytes
from providers.images.base import (
    DeclaredImageOptions,
    ImageOutput,
    ImageRequest,
    declared_images,
    file_part,
    provider_image,
)
from providers.scrub import STRUCTURAL, Scrubber
from providers.shared_wire import openai_error as error_from_response

GENERATIONS = "/images/generations"
EDITS = "/images/edits"
DALL_E_QUALITIES = frozenset({"standard", "hd"})
DEFAULT_SIZES = ("auto", "1024x1024", "1536x1024", "1024x1536")
DEFAULT_MAX_N = 10
# Base64 is a third larger than the images: ten high-quality 1536x1024 PNGs come near 50 MB,
# above the shared 32 MiB default.
DEFAULT_MAX_RESPONSE_BYTES = 128 * 1024 * 1024
DEFAULT_MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024


def is_dall_e(model: str) -> bool:
    return model.lower().startswith("dall-e")


def request_fields(request: ImageRequest, *, ask_b64: bool = False) -> dict[str, str | int]:
    """The fields of a generation or an edit, as JSON values (an edit sends them as text)."""
    fields: dict[str, str | int] = {
        "model": request.upstream_model,
        "prompt": request.prompt,
        "n": request.n,
    }
    dall_e = is_dall_e(request.upstream_model)
    if dall_e:
        # DALL-E has no "auto" size and knows only its own two qualities; its defaults apply.
        if request.size != "auto":
            fields["size"] = request.size
        if request.quality in DALL_E_QUALITIES:
            fields["quality"] = request.quality
    else:
        fields["size"] = request.size
        fields["quality"] = request.quality
        fields["background"] = request.background
        fields["output_format"] = request.output_format
        # OpenAI takes a compression for JPEG and WebP only.
        if request.output_compression is not None and request.output_format != "png":
            fields["output_compression"] = request.output_compression
    if dall_e or ask_b64:
        fields["response_format"] = "b64_json"
    return fields


def edit_files(request: ImageRequest) -> list[FormBytes]:
    """The input images (``image``, or ``image[]`` for several) and the mask as file parts."""
    field = "image" if len(request.images) == 1 else "image[]"
    parts = [
        file_part(field, f"image-{number}", image) for number, image in enumerate(request.images, 1)
    ]
    if request.mask is not None:
        parts.append(file_part("mask", "mask", request.mask))
    return parts


@dataclasses.dataclass(frozen=True, slots=True)
class AnsweredImage:
    """One item of an answer's ``data``: the image's bytes, or the URL to fetch them from."""

    data: bytes | None
    url: str | None
    revised_prompt: str | None


def parse_answer(body: bytes) -> list[AnsweredImage]:
    """The images of an ``ImagesResponse``; anything else is the provider's fault."""
    try:
        answer: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError("server", "The provider returned malformed JSON.") from exc
    items = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(items, list) or not items:
        raise UpstreamError("server", "The provider's answer held no images.")
    found: list[AnsweredImage] = []
    for item in items:
        if not isinstance(item, dict):
            raise UpstreamError("server", "The provider's answer held a malformed image.")
        revised = item.get("revised_prompt")
        revised = revised if isinstance(revised, str) else None
        encoded, url = item.get("b64_json"), item.get("url")
        if isinstance(encoded, str) and encoded:
            found.append(AnsweredImage(decode_b64(encoded), None, revised))
        elif isinstance(url, str) and url:
            found.append(AnsweredImage(None, url, revised))
        else:
            raise UpstreamError("server", "The provider's answer held an image without data.")
    return found


def decode_b64(encoded: str) -> bytes:
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UpstreamError("server", "The provider returned an image that is not base64.") from exc


def data_url_bytes(url: str) -> bytes | None:
    """The bytes of a ``data:`` URL with base64 content (some servers answer those), or None
    when ``url`` is not one."""
    if not url.startswith("data:"):
        return None
    head, comma, payload = url.partition(",")
    if not comma or not head.endswith(";base64"):
        raise UpstreamError("server", "The provider answered a data URL that is not base64.")
    return decode_b64(payload)


def download_error(
    status: int, body: bytes, headers: Mapping[str, str], scrubber: Scrubber = STRUCTURAL
) -> UpstreamError:
    """A failed download of an answered URL: the provider's fault whatever the status (a file
    host's 403 says nothing about the gateway's key)."""
    return UpstreamError(
        "server", f"The provider's image URL answered HTTP {status}.", status=status
    )


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


@dataclasses.dataclass(frozen=True, slots=True)
class OpenAIImageOptions(DeclaredImageOptions):
    """The image options of the ``openai`` kind."""

    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    image_sizes: tuple[str, ...] = DEFAULT_SIZES
    image_max_n: int = DEFAULT_MAX_N
    image_edits: bool = True
    image_masks: bool = True
    image_transparency: bool = True
    image_ask_b64: bool = False
    image_max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES


class OpenAIImagesAdapter:
    """Images through ``{base_url}/images/generations`` and ``{base_url}/images/edits``."""

    kind: ClassVar[str] = "openai"  # the chat adapter's kind: one provider serves both
    needs_base_url: ClassVar[bool] = True
    Options: ClassVar[type[OpenAIImageOptions]] = OpenAIImageOptions

    def __init__(self, settings: ProviderSettings) -> None:
        options = read_options(self.Options, settings.options)
        owner = f"provider {settings.name}"
        self.sizes, self.formats, self.max_n = declared_images(options, owner)
        self.supports_edit = options.image_edits
        self.supports_mask = options.image_masks
        self.supports_transparency = options.image_transparency
        self._ask_b64 = options.image_ask_b64
        self._max_download = options.image_max_download_bytes
        # The key is sent per request, never as a session default: a URL the provider answers
        # may be on another host, which must not see it.
        self._auth = {"authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        self._origin = origin(settings.base_url)
        self._http = HttpUpstream(settings, {}, options)

    async def start(self) -> None:
        await self._http.start()

    async def close(self) -> None:
        await self._http.close()

    async def generate(self, request: ImageRequest) -> list[ImageOutput]:
        headers = {**self._auth, "x-request-id": request.request_id}
        fields = request_fields(request, ask_b64=self._ask_b64)
        if request.images:
            reply = await self._http.send(
                "POST",
                EDITS,
                error_from_response,
                headers=headers,
                form=[(name, str(value)) for name, value in fields.items()],
                files=edit_files(request),
            )
        else:
            reply = await self._http.send(
                "POST",
                GENERATIONS,
                error_from_response,
                payload=orjson.dumps(fields),
                headers={**headers, "content-type": "application/json"},
            )
        outputs = []
        for item in parse_answer(reply.body):
            data = item.data if item.data is not None else await self._fetch(item.url or "")
            outputs.append(provider_image(data, request.output_format, item.revised_prompt))
        return outputs

    async def _fetch(self, url: str) -> bytes:
        """The bytes behind an answered URL, bounded by ``image_max_download_bytes``."""
        inline = data_url_bytes(url)
        if inline is not None:
            return inline
        if not url.startswith(("https://", "http://")):
            raise UpstreamError("server", "The provider answered an image URL that is not http(s).")
        headers = self._auth if origin(url) == self._origin else {}
        parts: list[bytes] = []
        seen = 0
        async for chunk in self._http.download(url, download_error, headers):
            seen += len(chunk)
            if seen > self._max_download:
                raise UpstreamError("server", "The provider's image was too large.")
            parts.append(chunk)
        return b"".join(parts)
