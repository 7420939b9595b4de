"""Image bytes for tests: small real images, and a PNG bomb written without ever holding its
pixels (a header declaring a huge size over a stream of compressed zero rows)."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator

from PIL import Image


def image_bytes(
    image_format: str = "PNG",
    size: tuple[int, int] = (64, 48),
    color: tuple[int, int, int] = (200, 60, 30),
) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, image_format)
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb_chunks(width: int, height: int) -> Iterator[bytes]:
    """A valid 1-bit greyscale PNG of ``width`` x ``height`` black pixels, in pieces: the rows
    are compressed as they are produced, so its few hundred KB never exist as pixels here."""
    yield b"\x89PNG\r\n\x1a\n"
    yield _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then the packed bits
    compressor = zlib.compressobj(9)
    pending = b""
    for _ in range(height):
        pending += compressor.compress(row)
        if len(pending) >= 64 * 1024:
            yield _chunk(b"IDAT", pending)
            pending = b""
    pending += compressor.flush()
    yield _chunk(b"IDAT", pending)
    yield _chunk(b"IEND", b"")
