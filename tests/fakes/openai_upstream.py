"""A fake OpenAI-compatible server speaking the Chat Completions and Embeddings wire formats,
with faults.

``POST /v1/chat/completions``: a ``chat.completion`` body, or with ``stream: true`` an event
stream of ``chat.completion.chunk`` objects ending ``data: [DONE]`` (with a usage chunk first
when ``stream_options.include_usage`` is set). Errors use OpenAI's ``{"error": {...}}`` body.
Like a model that uses the tools it is given, it answers a request that offers tools (unless
``tool_choice`` is ``none``) and carries no tool result yet with one call of the first tool (or
the one ``tool_choice`` names), ``finish_reason: tool_calls``; once a ``tool`` message is in
the conversation it answers with text. ``POST /v1/responses`` speaks the Responses API
natively (``openai_responses_upstream``).

Sync answers can break too (``SYNC_BODY_FAULTS``): ``cut`` sends half the body and aborts,
``stall`` sends half and then nothing, ``no_done`` ends a chunked body cleanly half way, ``drip``
writes it ``size`` bytes at a time, ``giant`` pads the content to ``size`` bytes, and
``malformed_sse`` answers an event stream to a request that did not ask for one.

``POST /v1/embeddings``: OpenAI's ``list`` of ``embedding`` objects, one per input, each a
vector of ``FAKE_DIMENSIONS`` (or ``dimensions``) floats derived from the input's sha256, or
with ``encoding_format: base64`` their little-endian float32 bytes; usage counts the words (or
the token ids). The same faults apply (``status``, ``reset``, ``slow``, ``malformed`` and the
broken bodies).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import struct
import time
from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.faults import (
    Fault,
    FaultPlan,
    drip,
    play_shared_fault,
    play_stream,
    wait_or_abandon,
)
from tests.fakes.openai_responses_upstream import responses_handler

REPLY_WORDS = ["Hello", " from", " the", " fake", " upstream", "!"]
FAKE_DIMENSIONS = 8
TOOL_CALL_ID = "call_fake01"
TOOL_ARGUMENTS_PARTS = ['{"city": ', '"Paris"}']  # how a stream delivers the arguments
SYNC_BODY_FAULTS = ("cut", "stall", "no_done", "drip", "giant", "malformed_sse")


def _error_body(fault: Fault) -> bytes:
    kinds = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error"}
    return orjson.dumps(
        {
            "error": {
                "message": fault.message,
                "type": kinds.get(fault.status, "server_error"),
                "param": fault.param,
                "code": None,
            }
        }
    )


def _usage(body: dict[str, Any], completion_tokens: int) -> dict[str, int]:
    prompt_tokens = 10 * len(body.get("messages") or [])
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def tool_to_call(body: dict[str, Any]) -> str | None:
    """The tool this answer calls, if it calls one."""
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    messages = body.get("messages") or []
    if not tools or choice == "none" or any(m.get("role") == "tool" for m in messages):
        return None
    if isinstance(choice, dict):
        return str(choice["function"]["name"])
    return str(tools[0]["function"]["name"])


def _error_response(fault: Fault) -> web.Response:
    return web.Response(
        status=fault.status,
        body=_error_body(fault),
        headers=fault.headers,
        content_type="application/json",
    )


def make_app(plan: FaultPlan, api_key: str | None = None) -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = orjson.loads(raw)
        plan.record_request(request, body)
        fault = plan.take()
        if api_key is not None and request.headers.get("authorization") != f"Bearer {api_key}":
            fault = Fault(name="status", status=401, message="Incorrect API key provided")
        early = await play_shared_fault(request, plan, fault, _error_response)
        if early is not None:
            return early
        if body.get("stream"):
            return await _stream(request, body, fault, plan)
        if fault.name == "malformed":
            return web.Response(
                body=b'{"id": "chatcmpl-x", "choices": [', content_type="application/json"
            )
        text = "".join(REPLY_WORDS)
        if fault.name == "giant":
            text += "x" * fault.size
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        finish_reason = "stop"
        tool = tool_to_call(body)
        if tool is not None:
            function = {"name": tool, "arguments": "".join(TOOL_ARGUMENTS_PARTS)}
            message["content"] = None
            message["tool_calls"] = [{"id": TOOL_CALL_ID, "type": "function", "function": function}]
            finish_reason = "tool_calls"
        answer = {
            "id": "chatcmpl-fake123",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ],
            "usage": _usage(body, len(REPLY_WORDS)),
        }
        if fault.name in SYNC_BODY_FAULTS:
            return await _broken_answer(request, orjson.dumps(answer), fault, plan)
        return web.json_response(answer, dumps=lambda data: orjson.dumps(data).decode())

    async def embeddings(request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        plan.record_request(request, body)
        fault = plan.take()
        if api_key is not None and request.headers.get("authorization") != f"Bearer {api_key}":
            fault = Fault(name="status", status=401, message="Incorrect API key provided")
        early = await play_shared_fault(
            request, plan, fault, _error_response, b'{"object": "list", "data": ['
        )
        if early is not None:
            return early
        answer = _embeddings_answer(body)
        if fault.name in SYNC_BODY_FAULTS:
            return await _broken_answer(request, orjson.dumps(answer), fault, plan)
        return web.json_response(answer, dumps=lambda data: orjson.dumps(data).decode())

    return _app_with(chat, embeddings, responses_handler(plan, _error_response))


def fake_vector(item: str | list[int], dimensions: int = FAKE_DIMENSIONS) -> list[float]:
    """The fake's embedding of one input: float32 values in [-1, 1) from its sha256."""
    digest = hashlib.sha256(orjson.dumps(item)).digest() * (dimensions // 32 + 1)
    values = [(byte - 128) / 128 for byte in digest[:dimensions]]
    return list(struct.unpack(f"<{dimensions}f", struct.pack(f"<{dimensions}f", *values)))


def _embeddings_answer(body: dict[str, Any]) -> dict[str, Any]:
    given = body["input"]
    items = [given] if isinstance(given, str) or isinstance(given[0], int) else given
    dimensions = body.get("dimensions") or FAKE_DIMENSIONS
    data: list[dict[str, Any]] = []
    tokens = 0
    for index, item in enumerate(items):
        vector = fake_vector(item, dimensions)
        tokens += len(item.split()) if isinstance(item, str) else len(item)
        embedding: Any = vector
        if body.get("encoding_format") == "base64":
            embedding = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return {
        "object": "list",
        "data": data,
        "model": body.get("model"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _app_with(chat: Any, embeddings: Any, responses: Any) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/v1/responses", responses)
    return app


async def _broken_answer(
    request: web.Request, body: bytes, fault: Fault, plan: FaultPlan
) -> web.StreamResponse:
    """A sync answer that breaks on the way (``SYNC_BODY_FAULTS``)."""
    content_type = "text/event-stream" if fault.name == "malformed_sse" else "application/json"
    response = web.StreamResponse(headers={"content-type": content_type})
    if fault.name == "malformed_sse":
        body = b"data: " + body + b"\n\ndata: [DONE]\n\n"
    if fault.name != "no_done":
        response.content_length = len(body)  # the client knows the body is incomplete
    await response.prepare(request)
    half = body[: len(body) // 2]
    if fault.name in ("cut", "stall", "no_done"):
        await response.write(half)
        if fault.name == "cut":
            assert request.transport is not None
            request.transport.abort()
        elif fault.name == "stall":
            await wait_or_abandon(request, plan, 60.0)
        else:
            await response.write_eof()
        return response
    if fault.name == "drip":
        if not await drip(request, response, body, fault):
            plan.note_abandoned()
            return response
    else:
        await response.write(body)
    await response.write_eof()
    return response


async def _stream(
    request: web.Request, body: dict[str, Any], fault: Fault, plan: FaultPlan
) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    base = {
        "id": "chatcmpl-fakestream",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model"),
    }
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    count = plan.chunk_count

    def event(choice: dict[str, Any]) -> bytes:
        return b"data: " + orjson.dumps({**base, "choices": [choice]}) + b"\n\n"

    def frames() -> Iterator[bytes]:
        # Made as they are sent, so a very long stream costs the fake no memory up front.
        yield event(
            {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        )
        tool = tool_to_call(body)
        if tool is not None:
            yield from _tool_call_events(tool, event)
        else:
            padding = "x" * plan.chunk_padding
            for word in itertools.islice(itertools.cycle(REPLY_WORDS), count):
                delta = {"content": word + padding}
                yield event({"index": 0, "delta": delta, "finish_reason": None})
            yield event({"index": 0, "delta": {}, "finish_reason": "stop"})
        if include_usage:
            usage: dict[str, Any] = {**base, "choices": [], "usage": _usage(body, count)}
            yield b"data: " + orjson.dumps(usage) + b"\n\n"
        if fault.name != "no_done":
            yield b"data: [DONE]\n\n"

    broken = b"data: {not json\n\n"
    return await play_stream(request, response, frames(), broken, fault=fault, plan=plan)


def _tool_call_events(tool: str, event: Any) -> Iterator[bytes]:
    """A streamed tool call as OpenAI sends one: id, type and name first with empty
    arguments, then the arguments in pieces, then ``finish_reason: tool_calls``."""
    call = {"index": 0, "id": TOOL_CALL_ID, "type": "function"}
    call["function"] = {"name": tool, "arguments": ""}
    yield event({"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None})
    for part in TOOL_ARGUMENTS_PARTS:
        delta = {"tool_calls": [{"index": 0, "function": {"arguments": part}}]}
        yield event({"index": 0, "delta": delta, "finish_reason": None})
    yield event({"index": 0, "delta": {}, "finish_reason": "tool_calls"})
