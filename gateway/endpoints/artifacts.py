"""``GET /v1/artifacts/{id}`` (the record) and ``GET /v1/artifacts/{id}/content`` (the bytes).

Content is streamed from disk with its stored type and exact length, and honours a single
``Range`` (``bytes=a-b``, ``bytes=a-``, ``bytes=-n``) with 206 so audio players can seek. A range
past the end is 416 with ``Content-Range: bytes */size``; a header we do not understand (or
several ranges) is ignored and the whole file is sent, as HTTP allows.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from gateway.artifacts.files import Artifacts, public_artifact
from gateway.contract.errors import GatewayError
from gateway.http.asgi import RawHeaders, Request
from gateway.policy.auth import KeyRing

_RANGE = re.compile(rb"bytes=(\d*)-(\d*)")
_ASCII_NAME = re.compile(r"[^A-Za-z0-9._ -]")
_BEYOND_ANY_FILE = 10**18
_MAX_POSITION_DIGITS = 18


def _position(digits: bytes) -> int:
    """A byte position of a Range header; any longer number is past the end of any file (and
    Python refuses to convert one of over 4300 digits at all)."""
    return int(digits) if len(digits) <= _MAX_POSITION_DIGITS else _BEYOND_ANY_FILE


def parse_range(header: bytes | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range asked for, or None for the whole file; raises for 416."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None  # unknown unit, several ranges or garbage: serve the whole file
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None
    if not first:  # a suffix: the last n bytes
        length = _position(last)
        if length == 0:
            raise _unsatisfiable(size)
        return max(0, size - length), size - 1
    start = _position(first)
    if last and _position(last) < start:
        return None  # not a valid range: ignored
    if start >= size:
        raise _unsatisfiable(size)
    end = _position(last) if last else size - 1
    return start, min(end, size - 1)


def _unsatisfiable(size: int) -> GatewayError:
    return GatewayError(
        "range_not_satisfiable",
        f"The range is outside the file ({size} bytes).",
        headers={"content-range": f"bytes */{size}"},
    )


def content_disposition(filename: str) -> bytes:
    """``inline`` with an ASCII fallback and the RFC 5987 UTF-8 name (never a raw header)."""
    fallback = _ASCII_NAME.sub("_", filename) or "audio"
    return f"inline; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}".encode()


class ArtifactEndpoints:
    def __init__(self, keys: KeyRing, artifacts: Artifacts) -> None:
        self._keys = keys
        self._artifacts = artifacts

    async def metadata(self, request: Request) -> None:
        key = self._keys.authenticate(request)
        record = await self._artifacts.lookup(request.params["id"], key.name)
        await request.respond_json(200, public_artifact(record))

    async def content(self, request: Request) -> None:
        key = self._keys.authenticate(request)
        record = await self._artifacts.lookup(request.params["id"], key.name)
        size = record.bytes
        wanted = parse_range(request.header(b"range"), size) if size else None
        start, end = wanted if wanted is not None else (0, size - 1)
        headers: RawHeaders = [
            (b"content-type", record.content_type.encode()),
            (b"content-length", str(end - start + 1 if size else 0).encode()),
            (b"accept-ranges", b"bytes"),
            (b"etag", f'"{record.sha256}"'.encode()),
            (b"cache-control", b"private, max-age=3600"),
            (b"content-disposition", content_disposition(record.filename)),
        ]
        if wanted is not None:
            headers.append((b"content-range", f"bytes {start}-{end}/{size}".encode()))
        await request.send(
            {"type": "http.response.start", "status": 206 if wanted else 200, "headers": headers}
        )
        if size:
            async for block in self._artifacts.files.read(record.artifact_id, start, end):
                await request.send({"type": "http.response.body", "body": block, "more_body": True})
        await request.send({"type": "http.response.body", "body": b"", "more_body": False})
