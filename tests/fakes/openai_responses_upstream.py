"""The OpenAI fake's ``POST /v1/responses``: OpenAI's Responses wire format, with faults.

A ``Response`` object whose output is one message (``NATIVE_WORDS``), or with ``stream: true``
OpenAI's event stream: ``event: <type>`` / ``data: <json>`` pairs with sequence numbers, from
``response.created`` to ``response.completed``, after which the connection simply ends (the
Responses API sends no ``[DONE]``; the ``no_done`` fault leaves ``response.completed`` out).
Errors use OpenAI's ``{"error": {...}}`` body.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.faults import Fault, FaultPlan, play_shared_fault, play_stream

NATIVE_WORDS = ["Native", " hello", " from", " the", " fake", "!"]
RESPONSE_ID = "resp_fakenative0123456789abcdef"


def _response(body: dict[str, Any], status: str, text: str | None) -> dict[str, Any]:
    output = []
    if text is not None:
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        output.append(
            {
                "id": "msg_fakenative01",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [part],
            }
        )
    response: dict[str, Any] = {
        "id": RESPONSE_ID,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": body.get("metadata") or {},
        "model": body.get("model"),
        "output": output,
        "parallel_tool_calls": True,
        "temperature": body.get("temperature"),
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p"),
    }
    if text is not None:
        response["usage"] = {
            "input_tokens": 11,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": len(NATIVE_WORDS),
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 11 + len(NATIVE_WORDS),
        }
    return response


def _frames(body: dict[str, Any]) -> Iterator[bytes]:
    sequence = 0

    def frame(kind: str, **payload: Any) -> bytes:
        nonlocal sequence
        data = orjson.dumps({"type": kind, **payload, "sequence_number": sequence})
        sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"

    started = _response(body, "in_progress", None)
    yield frame("response.created", response=started)
    yield frame("response.in_progress", response=started)
    item: dict[str, Any] = {"id": "msg_fakenative01", "type": "message", "role": "assistant"}
    item.update(status="in_progress", content=[])
    yield frame("response.output_item.added", output_index=0, item=item)
    where = {"item_id": "msg_fakenative01", "output_index": 0, "content_index": 0}
    empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    yield frame("response.content_part.added", **where, part=empty)
    for word in NATIVE_WORDS:
        yield frame("response.output_text.delta", **where, delta=word, logprobs=[])
    text = "".join(NATIVE_WORDS)
    yield frame("response.output_text.done", **where, text=text, logprobs=[])
    yield frame("response.content_part.done", **where, part={**empty, "text": text})
    done = _response(body, "completed", text)
    yield frame("response.output_item.done", output_index=0, item=done["output"][0])
    yield frame("response.completed", response=done)


def responses_handler(
    plan: FaultPlan, error: Callable[[Fault], web.Response]
) -> Callable[[web.Request], Any]:
    async def responses(request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        plan.record_request(request, body)
        fault = plan.take()
        early = await play_shared_fault(request, plan, fault, error)
        if early is not None:
            return early
        if not body.get("stream"):
            answer = _response(body, "completed", "".join(NATIVE_WORDS))
            return web.json_response(answer, dumps=lambda data: orjson.dumps(data).decode())
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        broken = b"event: response.output_text.delta\ndata: {not json\n\n"
        frames = list(_frames(body))
        if fault.name == "no_done":
            frames.pop()  # ends cleanly, but without response.completed
        return await play_stream(request, response, frames, broken, fault=fault, plan=plan)

    return responses
