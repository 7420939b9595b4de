"""Recognising audio by its bytes: an upload's declared type is never trusted.

``sniff_audio`` looks at the first bytes of a file (``SNIFF_BYTES`` are enough for every format
here) and names its media type, or None when the bytes are not a recognised audio container.
MP4 brands are accepted as ``audio/mp4`` without parsing the movie box, so an MP4 with video is
let through to the provider, which then rejects it; everything else is recognised exactly.
"""

from __future__ import annotations

SNIFF_BYTES = 64

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
