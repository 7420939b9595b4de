"""The benchmark's timed streaming upstream: an OpenAI-compatible SSE server with a fixed cadence.

``POST /timed/{chunks}/{gap_ms}/v1/chat/completions`` with ``"stream": true`` answers a
``chat.completion.chunk`` event stream of ``chunks`` content events, the k-th sent at
``start + k * gap_ms`` (an absolute schedule, so one late wake-up does not shift the rest), then a
usage event when ``stream_options.include_usage`` is set, then ``data: [DONE]``. Without
``stream`` it answers a canned ``chat.completion``. Anything else is 404.

It shares a core with the load generator, and a thousand streams at 20 events a second each
are 20,000 writes a second: so it is a bare asyncio protocol (httptools parses requests) whose
cost per event is one timer callback and one write of a pre-encoded event. Bodies have a
content-length (no chunked framing); connections are kept alive. Started by bench/stack.py
pinned to CPU 1.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import re

import httptools
import orjson
import uvloop

MAX_CHUNKS = 10_000
PATH = re.compile(rb"^/timed/(\d+)/(\d+)/v1/chat/completions$")
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
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"


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


class TimedProtocol(asyncio.Protocol):
    """One client connection; requests are answered one after the other (keep-alive)."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.transport = None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        match = PATH.match(self.url)
        chunks = int(match[1]) if match else 0
        if match is None or self.parser.get_method() != b"POST" or not 1 <= chunks <= MAX_CHUNKS:
            self.write(NOT_FOUND)
            return
        try:
            request = orjson.loads(b"".join(self.body))
        except orjson.JSONDecodeError:
            request = None
        if not isinstance(request, dict) or request.get("stream") is not True:
            self.respond(b"application/json", COMPLETION)
            return
        options = request.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        events = stream_events(chunks)
        tail = usage_event(chunks) + DONE if include_usage else DONE
        length = sum(map(len, events)) + len(tail)
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        self.write(head + b"cache-control: no-cache\r\ncontent-length: %d\r\n\r\n" % length)
        self.send_event(events, tail, int(match[2]) / 1000.0, self.loop.time(), 0)

    def respond(self, kind: bytes, body: bytes) -> None:
        head = b"HTTP/1.1 200 OK\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n" % (
            kind,
            len(body),
        )
        self.write(head + body)

    def send_event(
        self, events: tuple[bytes, ...], tail: bytes, gap: float, start: float, index: int
    ) -> None:
        self.timer = None
        event = events[index]
        if index + 1 == len(events):
            self.write(event + tail)
            return
        self.write(event)
        due = start + (index + 1) * gap
        self.timer = self.loop.call_at(due, self.send_event, events, tail, gap, start, index + 1)


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(TimedProtocol, host, port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18181)
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
