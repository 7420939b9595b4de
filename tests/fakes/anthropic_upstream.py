"""A fake Anthropic server speaking the Messages API wire format, with faults.

``POST /v1/messages``: a ``message`` body, or with ``stream: true`` an event stream of
``event: <type>`` / ``data: <json>`` pairs: message_start, content_block_start, ping,
content_block_delta..., content_block_stop, message_delta, message_stop. When ``tool_choice``
forces a tool (``any`` or ``tool``) the answer is one ``tool_use`` block instead of text; so it
is when tools are offered with ``auto`` (or no choice) and the conversation holds no
``tool_result`` yet, as a model that uses its tools would answer. Errors
use Anthropic's ``{"type": "error", "error": {...}, "request_id": ...}`` body. Like the real API
it requires ``anthropic-version`` and ``max_tokens``, refuses fields the Messages API does not
have, and checks ``x-api-key`` when given a key. ``output_config.format`` (structured outputs) is
answered with JSON text fitting the schema; the top-level ``cache_control`` makes the fake cache
prompts and report cache writes and reads in usage.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
from aiohttp import web

from providers.tokens import content_text, count_text
from tests.fakes.faults import Fault, FaultPlan, play_shared_fault, play_stream

REPLY_WORDS = ["Hello", " from", " the", " fake", " Claude", "!"]
TOOL_USE_ID = "toolu_fake01"
TOOL_INPUT = {"city": "Paris"}
# How the tool input arrives in a stream: an empty first delta, as the real API often sends.
TOOL_INPUT_PARTS = ["", '{"city": ', '"Paris"}']

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}

# The request fields of the Messages API (others are a 400, as upstream).
MESSAGES_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "stream",
        "metadata",
        "tools",
        "tool_choice",
        "thinking",
        "output_config",
        "service_tier",
        "cache_control",
        "container",
        "inference_geo",
    }
)

_ids = itertools.count(1)


def error_body(status: int, message: str) -> bytes:
    kind = ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")
    return orjson.dumps(
        {
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": f"req_fake{next(_ids):06d}",
        }
    )


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=error_body(status, message),
        headers=headers or {},
        content_type="application/json",
    )


def _input_tokens(body: dict[str, Any]) -> int:
    """About what the real API would count: the words, plus a little framing per message."""
    messages = body.get("messages") or []
    total = count_text(content_text(body.get("system"))) + 3 * len(messages)
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and isinstance(block.get("content"), str):
                    total += count_text(block["content"])  # tool_result text
        total += count_text(content_text(content))
    return total


def _has_tool_result(body: dict[str, Any]) -> bool:
    return any(
        isinstance(block, dict) and block.get("type") == "tool_result"
        for message in body.get("messages") or []
        if isinstance(message, dict) and isinstance(message.get("content"), list)
        for block in message["content"]
    )


def _forced_tool(body: dict[str, Any]) -> str | None:
    choice = body.get("tool_choice") or {}
    tools = body.get("tools") or []
    if choice.get("type") == "tool":
        return str(choice.get("name"))
    if choice.get("type") == "any" and tools:
        return str(tools[0].get("name"))
    if choice.get("type", "auto") == "auto" and tools and not _has_tool_result(body):
        return str(tools[0].get("name"))
    return None


def _reply_words(body: dict[str, Any], count: int) -> tuple[list[str], str]:
    """The words of the answer (one output token each) and its stop_reason."""
    words = (REPLY_WORDS * (count // len(REPLY_WORDS) + 1))[:count]
    if len(words) > body["max_tokens"]:
        return words[: body["max_tokens"]], "max_tokens"
    return words, "end_turn"


def _usage(body: dict[str, Any], output_tokens: int, cache: set[bytes]) -> dict[str, int]:
    """Usage as upstream reports it. With the top-level ``cache_control`` (automatic prompt
    caching) the whole prompt is cached: written the first time this server sees it, read from
    then on, and ``input_tokens`` (what follows the cache breakpoint) is 0."""
    usage = {
        "input_tokens": _input_tokens(body),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
    }
    if body.get("cache_control"):
        prompt = orjson.dumps([body.get("system"), body.get("tools"), body["messages"]])
        kind = "cache_read_input_tokens" if prompt in cache else "cache_creation_input_tokens"
        cache.add(prompt)
        usage[kind], usage["input_tokens"] = usage["input_tokens"], 0
    return usage


def sample(schema: Any, defs: dict[str, Any]) -> Any:
    """A value that fits ``schema`` (the subset structured outputs accept), as constrained
    decoding would produce: every property, the first enum value or anyOf branch."""
    if not isinstance(schema, dict):
        return None
    if isinstance(schema.get("$ref"), str):
        return sample(defs.get(schema["$ref"].rsplit("/", 1)[-1]), defs)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if schema.get("anyOf"):
        return sample(schema["anyOf"][0], defs)
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    properties = schema.get("properties") or {}
    values: dict[str, Any] = {
        "object": lambda: {name: sample(sub, defs) for name, sub in properties.items()},
        "array": lambda: [sample(schema.get("items"), defs)],
        "string": lambda: "fake",
        "integer": lambda: 1,
        "number": lambda: 1.5,
        "boolean": lambda: True,
    }
    return values[kind]() if kind in values else None


def _structured_text(body: dict[str, Any]) -> str | None:
    """The answer to ``output_config.format`` (a JSON schema), as JSON text; None without one."""
    output_format = (body.get("output_config") or {}).get("format")
    if not isinstance(output_format, dict):
        return None
    schema = output_format.get("schema") or {}
    return orjson.dumps(sample(schema, schema.get("$defs") or {})).decode()


def _check(request: web.Request, body: Any, api_key: str | None) -> web.Response | None:
    """The real API's own refusals, before any fault applies."""
    if api_key is not None and request.headers.get("x-api-key") != api_key:
        return _error(401, "invalid x-api-key")
    if not request.headers.get("anthropic-version"):
        return _error(400, "anthropic-version: header is required")
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return _error(400, "messages: Field required")
    unknown = sorted(set(body) - MESSAGES_FIELDS)
    if unknown:
        return _error(400, f"{unknown[0]}: Extra inputs are not permitted")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return _error(400, "max_tokens: Field required")
    return None


def make_app(plan: FaultPlan, api_key: str | None = None) -> web.Application:
    cache: set[bytes] = set()  # prompts seen with cache_control

    async def messages(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        plan.record_request(request, body)
        refusal = _check(request, body, api_key)
        if refusal is not None:
            return refusal
        fault = plan.take()
        early = await play_shared_fault(
            request, plan, fault, lambda f: _error(f.status, f.message, f.headers)
        )
        if early is not None:
            return early
        if body.get("stream"):
            return await _stream(request, body, fault, plan, cache)
        if fault.name == "malformed":
            return web.Response(
                body=b'{"id": "msg_fake", "type": "message", "content": [',
                content_type="application/json",
            )
        tool = _forced_tool(body)
        if tool is not None:
            content: list[dict[str, Any]] = [
                {"type": "tool_use", "id": TOOL_USE_ID, "name": tool, "input": TOOL_INPUT}
            ]
            stop_reason, output_tokens = "tool_use", 12
        elif (structured := _structured_text(body)) is not None:
            content = [{"type": "text", "text": structured}]
            stop_reason, output_tokens = "end_turn", count_text(structured)
        else:
            words, stop_reason = _reply_words(body, len(REPLY_WORDS))
            content = [{"type": "text", "text": "".join(words)}]
            output_tokens = len(words)
        return web.json_response(
            {
                "id": f"msg_fake{next(_ids):06d}",
                "type": "message",
                "role": "assistant",
                "model": body.get("model"),
                "content": content,
                "stop_reason": stop_reason,
                "stop_sequence": None,
                "usage": _usage(body, output_tokens, cache),
            },
            dumps=lambda data: orjson.dumps(data).decode(),
        )

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/messages", messages)
    return app


def _events(
    body: dict[str, Any], plan: FaultPlan, cache: set[bytes]
) -> list[tuple[str, dict[str, Any]]]:
    """The stream's events up to (not including) message_stop."""
    tool = _forced_tool(body)
    start: dict[str, Any] = {
        "id": f"msg_fake{next(_ids):06d}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model"),
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _usage(body, 1, cache),
    }
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start})
    ]
    if tool is not None:
        block: dict[str, Any] = {"type": "tool_use", "id": TOOL_USE_ID, "name": tool, "input": {}}
        deltas = [{"type": "input_json_delta", "partial_json": part} for part in TOOL_INPUT_PARTS]
        stop_reason, output_tokens = "tool_use", 12
    else:
        structured = _structured_text(body)
        if structured is not None:  # in two deltas, as JSON text is streamed
            half = len(structured) // 2
            words, stop_reason = [structured[:half], structured[half:]], "end_turn"
        else:
            words, stop_reason = _reply_words(body, plan.chunk_count)
        block = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": word} for word in words]
        output_tokens = len(words)
    events.append(
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block})
    )
    events.append(("ping", {"type": "ping"}))
    events += [
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
        for delta in deltas
    ]
    events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
    delta = {"stop_reason": stop_reason, "stop_sequence": None}
    usage = {"output_tokens": output_tokens}
    events.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
    return events


async def _stream(
    request: web.Request, body: dict[str, Any], fault: Fault, plan: FaultPlan, cache: set[bytes]
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
    )
    await response.prepare(request)
    events = _events(body, plan, cache)
    if fault.name != "no_done":
        events.append(("message_stop", {"type": "message_stop"}))
    frames = [
        b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
        for name, data in events
    ]
    broken = b"event: content_block_delta\ndata: {not json\n\n"
    return await play_stream(request, response, frames, broken, fault=fault, plan=plan)
