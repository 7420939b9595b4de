"""Reading a JSON request body safely: media type and size are checked before any parsing.

A declared ``Content-Length`` over the limit is refused before one byte is read; an undeclared
(chunked) body is counted as it arrives and refused the moment it passes the limit.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.asgi import Request
from gateway.errors import GatewayError, invalid


def require_json_type(request: Request) -> None:
    content_type = request.header(b"content-type")
    if content_type is None:
        raise GatewayError("unsupported_media_type", "Content-Type must be application/json.")
    media = content_type.split(b";", 1)[0].strip().lower()
    if media != b"application/json":
        raise GatewayError("unsupported_media_type", "Content-Type must be application/json.")


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.header(b"content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise GatewayError("payload_too_large", f"The body exceeds {limit} bytes.")
        except ValueError:
            raise GatewayError("invalid_request", "Content-Length is not a number.") from None
    first = await request.receive()
    body: bytes = first.get("body", b"")
    if not first.get("more_body", False):
        if len(body) > limit:
            raise GatewayError("payload_too_large", f"The body exceeds {limit} bytes.")
        return body
    parts = [body]
    size = len(body)
    more = True
    while more:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            request.ctx.disconnected = True
            raise GatewayError("invalid_request", "The client disconnected mid-body.")
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise GatewayError("payload_too_large", f"The body exceeds {limit} bytes.")
        parts.append(chunk)
        more = message.get("more_body", False)
    return b"".join(parts)


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    require_json_type(request)
    raw = await read_body(request, limit)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid(
            [{"field": "body", "issue": f"not valid JSON ({exc.msg})"}],
            "The body is not valid JSON.",
        ) from None
    if not isinstance(data, dict):
        raise invalid([{"field": "body", "issue": "must be a JSON object"}])
    return data
