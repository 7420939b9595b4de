"""How many writes a relayed stream costs: a provider's last batch leaves with the gateway's own
end of stream, in one body message (one write syscall on the client's socket).

A raw upstream answers a streamed chat in one write (head, three content events, ``[DONE]``),
as a short answer often arrives; the gateway then sends one body message for the whole stream,
and the upstream connection still goes back to the pool (the next stream reuses it). An
upstream that sends its ``[DONE]`` apart from the content costs a second message, as before.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import orjson

from gateway.app import create_app
from gateway.config.settings import settings_from_dict
from gateway.http.asgi import Message, Receive, Scope, Send
from tests.conftest import TEST_ENV, auth, base_config
from tests.fakes.raw_http import Request, serve_in_thread
from tests.fakes.server import UvicornServer


def event(content: str) -> bytes:
    chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "upstream-gpt",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def sse_answer(body: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n"
    return head % len(body) + body


class BodyMessages:
    """ASGI middleware counting the response body messages of each request."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.counts: list[int] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.counts.append(0)
        index = len(self.counts) - 1

        async def counting(message: Message) -> None:
            if message["type"] == "http.response.body":
                self.counts[index] += 1
            await send(message)

        await self.app(scope, receive, counting)


def stream(server: UvicornServer) -> str:
    body = {"model": "gpt-test", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(server.url + "/v1/chat/completions", json=body, headers=auth())
    assert response.status_code == 200, response.text
    return response.text


def stream_in_two(server: UvicornServer, content_relayed: threading.Event) -> str:
    """A stream read line by line; ``content_relayed`` is set once both content events came."""
    body = {"model": "gpt-test", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    lines = []
    with httpx.stream(
        "POST", server.url + "/v1/chat/completions", json=body, headers=auth()
    ) as response:
        for line in response.iter_lines():
            lines.append(line)
            if sum(entry.startswith("data: {") for entry in lines) == 2:
                content_relayed.set()
    return "".join(line + "\n" for line in lines)


def test_a_stream_that_arrives_in_one_read_leaves_in_one_write(tmp_path: Any) -> None:
    whole = event("one") + event("two") + event("three") + b"data: [DONE]\n\n"
    split = [event("one") + event("two"), b"data: [DONE]\n\n"]

    content_relayed = threading.Event()

    async def script(request: Request, writer: asyncio.StreamWriter, index: int) -> bool:
        if index < 2:
            writer.write(sse_answer(whole))
        else:  # the end marker only once the client has the content
            writer.write(sse_answer(b"".join(split))[: -len(split[1])])
            await writer.drain()
            await asyncio.to_thread(content_relayed.wait, 10)
            writer.write(split[1])
        return True  # keep-alive

    with serve_in_thread(script) as (raw, url):
        config = base_config(url)
        config["storage"] = {"path": str(tmp_path / "artifacts")}
        counter = BodyMessages(create_app(settings_from_dict(config, TEST_ENV)))
        server = UvicornServer(counter).start()
        try:
            first, second = stream(server), stream(server)
            third = stream_in_two(server, content_relayed)
        finally:
            server.stop()
    for text in (first, second):
        assert text.count("data: ") == 4 and text.endswith("data: [DONE]\n\n")
        assert [
            orjson.loads(line[6:])["choices"][0]["delta"]["content"]
            for line in text.split("\n\n")[:3]
        ] == ["one", "two", "three"]
    assert third.count("data: ") == 3 and "data: [DONE]" in third
    assert counter.counts == [1, 1, 2]
    assert raw.connections == 1  # every stream went back to the pool
