"""The benchmark's timed streaming upstream: an OpenAI-compatible SSE server with a fixed cadence.

``POST /timed/{chunks}/{gap_ms}/v1/chat/completions`` with ``"stream": true`` answers a
``chat.completion.chunk`` event stream of ``chunks`` content events, the k-th sent at
``start + k * gap_ms`` (an absolute schedule, so one late wake-up does not shift the rest), then a
usage event when ``stream_options.include_usage`` is set, then ``data: [DONE]``. Without
``stream`` it answers a canned ``chat.completion``. Events are pre-encoded: the server's own cost
per chunk is one timer and one write, so what a client measures beyond the cadence is the path in
between (the gateway) and not this server. Started by bench/stack.py pinned to CPU 1.
"""

from __future__ import annotations

import argparse
import asyncio
import functools

import orjson
import uvloop
from aiohttp import web

MAX_CHUNKS = 10_000
COMPLETION = orjson.dumps(
    {
        "id": "chatcmpl-timed0001",
        "object": "chat.completion",
        "created": 1735689600,
        "model": "bench-upstream-1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello from the timed upstream."},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18},
    }
)
DONE = b"data: [DONE]\n\n"


def _event(data: object) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def _chunk(delta: dict[str, str], finish_reason: str | None) -> bytes:
    return _event(
        {
            "id": "chatcmpl-timed0002",
            "object": "chat.completion.chunk",
            "created": 1735689600,
            "model": "bench-upstream-1",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }
    )


@functools.cache
def stream_events(chunks: int) -> tuple[bytes, ...]:
    """The ``chunks`` content events: a role event first, the last one with finish_reason."""
    events = [_chunk({"role": "assistant", "content": ""}, None)]
    events += [_chunk({"content": f" token{index}"}, None) for index in range(1, chunks)]
    if chunks > 1:
        events[-1] = _chunk({"content": f" token{chunks - 1}"}, "stop")
    return tuple(events[:chunks])


@functools.cache
def usage_event(chunks: int) -> bytes:
    return _event(
        {
            "id": "chatcmpl-timed0002",
            "object": "chat.completion.chunk",
            "created": 1735689600,
            "model": "bench-upstream-1",
            "choices": [],
            "usage": {
                "prompt_tokens": 12,
                "completion_tokens": chunks,
                "total_tokens": 12 + chunks,
            },
        }
    )


async def chat(request: web.Request) -> web.StreamResponse:
    try:
        chunks = int(request.match_info["chunks"])
        gap = int(request.match_info["gap_ms"]) / 1000.0
    except ValueError:
        raise web.HTTPNotFound() from None
    if not 1 <= chunks <= MAX_CHUNKS:
        raise web.HTTPNotFound()
    body = orjson.loads(await request.read())
    if not isinstance(body, dict) or body.get("stream") is not True:
        return web.Response(body=COMPLETION, content_type="application/json")
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    events = stream_events(chunks)
    tail = usage_event(chunks) + DONE if include_usage else DONE
    response = web.StreamResponse(
        headers={"content-type": "text/event-stream", "cache-control": "no-cache"}
    )
    # The length is known in advance: no chunked framing, one plain write per event.
    response.content_length = sum(map(len, events)) + len(tail)
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for index, event in enumerate(events):
        if index:
            delay = start + index * gap - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        await response.write(event)
    await response.write(tail)
    await response.write_eof()
    return response


def make_app() -> web.Application:
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_post("/timed/{chunks}/{gap_ms}/v1/chat/completions", chat)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18181)
    args = parser.parse_args()
    web.run_app(
        make_app(),
        loop=uvloop.new_event_loop(),
        host=args.host,
        port=args.port,
        backlog=4096,
        keepalive_timeout=600.0,
        shutdown_timeout=2.0,
        access_log=None,
        print=None,
        handle_signals=True,
    )


if __name__ == "__main__":
    main()
