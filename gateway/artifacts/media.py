"""Recognising audio and images by their bytes: an upload's declared type is never trusted.

``sniff_audio`` looks at the first bytes of a file (``SNIFF_BYTES`` are enough for every format
here) and names its media type, or None when the bytes are not a recognised audio container.
MP4 brands are accepted as ``audio/mp4`` without parsing the movie box, so an MP4 with video is
let through to the provider, which then rejects it; everything else is recognised exactly.

``providers.images.base.sniff_image`` does the same for PNG, JPEG and WebP (the image adapters
check a provider's bytes with it too), and ``image_dimensions`` reads an image's
width and height from its header alone (PNG's IHDR, WebP's VP8/VP8L/VP8X header, JPEG's first
SOF marker), so a decompression bomb (a small file declaring billions of pixels) is refused
before anything decodes it. PNG and WebP say their size in the first ``SNIFF_BYTES``; a JPEG's
SOF may follow metadata, so up to ``IMAGE_HEAD_BYTES`` are searched. ``check_pixels`` refuses
a declared size over ``MAX_INPUT_PIXELS`` (413) or of no pixels (400).
"""

from __future__ import annotations

import struct

from gateway.contract.errors import GatewayError, invalid
from providers.images.base import MAX_INPUT_PIXELS

SNIFF_BYTES = 64
IMAGE_HEAD_BYTES = 256 * 1024
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")
# JPEG markers that start a frame (SOF0-SOF15 but DHT C4, JPG C8 and DAC CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}

_MP4_AUDIO_BRANDS = frozenset(
    {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"mp42", b"mp41", b"isom", b"iso2"}
)
_MPEG_VERSION_RESERVED = 0b01
_LAYER_RESERVED = 0b00


def _mpeg_frame(head: bytes) -> str | None:
    """An MPEG audio frame header (MP3) or an ADTS header (raw AAC) at the start, if any."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    version = (head[1] >> 3) & 0b11
    layer = (head[1] >> 1) & 0b11
    if layer == _LAYER_RESERVED:
        # ADTS (AAC) uses the layer bits 00 with the 12-bit sync word and MPEG-2/4 ids.
        if head[1] & 0xF0 == 0xF0 and ((head[2] >> 2) & 0x0F) < 13:
            return "audio/aac"
        return None
    bitrate_index = head[2] >> 4
    sample_rate_index = (head[2] >> 2) & 0b11
    if version == _MPEG_VERSION_RESERVED or bitrate_index in (0, 15) or sample_rate_index == 3:
        return None
    return "audio/mpeg"


def sniff_audio(head: bytes) -> str | None:
    """The audio media type of a file starting with ``head``, or None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[:4] == b"fLaC":
        return "audio/flac"
    if head[:4] == b"OggS":
        return "audio/ogg"
    if head[:3] == b"ID3":
        return "audio/mpeg"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "audio/aiff"
    if head[4:8] == b"ftyp" and head[8:12] in _MP4_AUDIO_BRANDS:
        return "audio/mp4"
    return _mpeg_frame(head)


EXTENSIONS = {
    "audio/wav": "wav",
    "audio/flac": "flac",
    "audio/ogg": "ogg",
    "audio/mpeg": "mp3",
    "audio/aiff": "aiff",
    "audio/mp4": "m4a",
    "audio/aac": "aac",
}


def _jpeg_dimensions(head: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 9 <= len(head):
        if head[at] != 0xFF:
            return None
        marker = head[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            at += 2
            continue
        (length,) = struct.unpack(">H", head[at + 2 : at + 4])
        if marker in _SOF:
            height, width = struct.unpack(">HH", head[at + 5 : at + 9])
            return width, height
        at += 2 + length
    return None


def _webp_dimensions(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8X" and len(head) >= 30:
        width = int.from_bytes(head[24:27], "little") + 1
        height = int.from_bytes(head[27:30], "little") + 1
        return width, height
    if chunk == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and len(head) >= 30 and head[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


def image_dimensions(head: bytes, content_type: str) -> tuple[int, int] | None:
    """Width and height from the header of an image of ``content_type`` (from ``sniff_image``),
    or None when ``head`` does not (yet) hold them."""
    if content_type == "image/png":
        if len(head) < 24 or head[12:16] != b"IHDR":
            return None
        width, height = struct.unpack(">II", head[16:24])
        return width, height
    if content_type == "image/webp":
        return _webp_dimensions(head)
    return _jpeg_dimensions(head)


def check_pixels(size: tuple[int, int], field: str) -> None:
    """413 for an image whose header declares more than ``MAX_INPUT_PIXELS`` (or nothing)."""
    width, height = size
    if width * height > MAX_INPUT_PIXELS:
        raise GatewayError(
            "payload_too_large",
            f"The image in {field!r} declares {width}x{height} pixels;"
            f" at most {MAX_INPUT_PIXELS} pixels are accepted.",
        )
    if not width or not height:
        raise invalid([{"field": field, "issue": "the image declares no pixels"}])
