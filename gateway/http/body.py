"""Reading a JSON request body safely: media type and size are checked before any parsing.

A declared ``Content-Length`` over the limit is refused before one byte is read; an undeclared
(chunked) body is counted as it arrives and refused the moment it passes the limit. A parsed
body nested deeper than ``MAX_JSON_DEPTH`` is refused too: orjson reads up to 1024 levels but
writes only 254, so a deeper body would fail later, when it is fingerprinted or forwarded.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.contract.errors import GatewayError, invalid
from gateway.http.asgi import Request

MAX_JSON_DEPTH = 128  # far beyond any real request; well inside what orjson can write back


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
    # Fewer opening brackets than the limit cannot nest past it: most bodies skip the walk.
    brackets = raw.count(b"[") + raw.count(b"{")
    if brackets > MAX_JSON_DEPTH and nested_deeper_than(data, MAX_JSON_DEPTH):
        raise invalid(
            [{"field": "body", "issue": f"nested deeper than {MAX_JSON_DEPTH} levels"}],
            "The body is nested too deeply.",
        )
    return data


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether objects and arrays in ``value`` nest more than ``limit`` levels.

    Iterative, so the check itself cannot exhaust the stack; only containers are pushed.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False
