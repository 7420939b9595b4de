"""The lean HTTP/1.1 client of the chat hot path, against raw scripted servers on 127.0.0.1.

Each test runs one event loop holding both a TCP server that writes exactly the bytes the test
scripts (keep-alive, chunked and EOF-delimited bodies, interim 1xx answers, garbage, early
closes) and the client, through ``HttpUpstream`` as adapters use it. Every test runs on the
stdlib loop and on uvloop (what the gateway runs in production).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvloop

from providers.base import ProviderSettings, UpstreamError
from providers.http import HttpUpstream

JSON_OK = b'{"ok":true}'


def ok(body: bytes = JSON_OK, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n%scontent-length: %d\r\n\r\n%s"
        % (
            extra,
            len(body),
            body,
        )
    )


@dataclass
class Request:
    head: bytes
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name:
                return value.strip()
        return None


Script = Callable[[Request, asyncio.StreamWriter, int], Awaitable[bool]]


@dataclass
class RawServer:
    """Answers each request with ``script(request, writer, index)``; False closes the socket."""

    script: Script
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    requests: list[Request] = field(default_factory=list)
    port: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def until_requests(self, count: int) -> None:
        while len(self.requests) < count:
            self.arrived.clear()
            await self.arrived.wait()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                request = Request(head, b"")
                length = int(request.header(b"content-length") or 0)
                request.body = await reader.readexactly(length)
                self.requests.append(request)
                self.arrived.set()
                if not await self.script(request, writer, len(self.requests) - 1):
                    return
                await writer.drain()
        finally:
            self.open_now -= 1
            writer.close()


def run(test: Callable[[], Coroutine[Any, Any, None]], loop_kind: str) -> None:
    if loop_kind == "uvloop":
        uvloop.run(test())
    else:
        asyncio.run(test())


async def serve(script: Script) -> tuple[RawServer, asyncio.Server]:
    raw = RawServer(script)
    server = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
    raw.port = server.sockets[0].getsockname()[1]
    return raw, server


def upstream(port: int, **settings: Any) -> HttpUpstream:
    base = ProviderSettings(
        name="raw", kind="openai", base_url=f"http://127.0.0.1:{port}/v1", **settings
    )
    return HttpUpstream(base, {"authorization": "Bearer upstream-secret"})


def mapper(status: int, body: bytes, headers: Any) -> UpstreamError:
    return UpstreamError("server", f"status {status}: {body.decode()}")


async def post(up: HttpUpstream, headers: dict[str, str] | None = None) -> bytes:
    return await up.post_json(
        "/chat/completions", b'{"model":"m"}', headers or {"x-request-id": "req_1"}, mapper
    )


async def pool_drained(up: HttpUpstream) -> None:
    """Wait (at most 5 s) until the client's pool holds no open connection."""
    pool = up._pool
    assert pool is not None
    for _ in range(500):
        if pool.open_connections == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{pool.open_connections} connections still open")


LOOPS = pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])


@LOOPS
def test_keep_alive_reuses_one_connection_and_sends_a_complete_head(loop_kind: str) -> None:
    async def answer(request: Request, writer: asyncio.StreamWriter, index: int) -> bool:
        writer.write(ok(b'{"n":%d}' % index))
        return True

    async def test() -> None:
        raw, server = await serve(answer)
        up = upstream(raw.port)
        await up.start()
        try:
            assert await post(up) == b'{"n":0}'
            assert await post(up, {"x-request-id": "req_2"}) == b'{"n":1}'
        finally:
            await up.close()
            server.close()
        assert raw.connections == 1
        first = raw.requests[0]
        assert first.head.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
        assert first.header(b"host") == b"127.0.0.1:%d" % raw.port
        assert first.header(b"content-type") == b"application/json"
        assert first.header(b"accept-encoding") == b"identity"
        assert first.header(b"authorization") == b"Bearer upstream-secret"
        assert first.header(b"x-request-id") == b"req_1"
        assert first.body == b'{"model":"m"}'
        assert raw.requests[1].header(b"x-request-id") == b"req_2"

    run(test, loop_kind)


@LOOPS
def test_chunked_eof_delimited_and_interim_answers(loop_kind: str) -> None:
    async def answer(request: Request, writer: asyncio.StreamWriter, index: int) -> bool:
        if index == 0:  # chunked, in pieces
            writer.write(b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{"a"\r\n')
            await writer.drain()
            writer.write(b"4\r\n:12}\r\n0\r\n\r\n")
            return True
        if index == 1:  # an interim 100 Continue, then the answer
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b'{"b":2}'))
            return True
        # neither length nor chunks: the body ends when the server closes
        writer.write(b'HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n{"c":')
        await writer.drain()
        writer.write(b"3}")
        return False

    async def test() -> None:
        raw, server = await serve(answer)
        up = upstream(raw.port)
        await up.start()
        try:
            assert await post(up) == b'{"a":12}'
            assert await post(up) == b'{"b":2}'
            assert await post(up) == b'{"c":3}'
            assert raw.connections == 1
            assert await post(up) == b'{"c":3}'  # the closed connection was not reused
            assert raw.connections == 2
        finally:
            await up.close()
            server.close()

    run(test, loop_kind)


@LOOPS
def test_connection_close_and_server_side_idle_close_open_a_new_connection(loop_kind: str) -> None:
    async def answer(request: Request, writer: asyncio.StreamWriter, index: int) -> bool:
        if index == 0:
            writer.write(ok(extra=b"connection: close\r\n"))
            return False
        writer.write(ok())
        return index != 1  # after the second answer the server drops the idle connection

    async def test() -> None:
        raw, server = await serve(answer)
        up = upstream(raw.port)
        await up.start()
        try:
            for expected_connections in (1, 2, 3):
                assert await post(up) == JSON_OK
                assert raw.connections == expected_connections
                if expected_connections < 3:
                    await pool_drained(up)  # the server's close has reached the pool
        finally:
            await up.close()
            server.close()

    run(test, loop_kind)


@LOOPS
def test_error_status_reaches_the_adapters_mapper_and_keeps_the_connection(loop_kind: str) -> None:
    async def answer(request: Request, writer: asyncio.StreamWriter, index: int) -> bool:
        if index == 0:
            body = b'{"error":"busy"}'
            writer.write(
                b"HTTP/1.1 429 Too Many\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
            )
        else:
            writer.write(ok())
        return True

    async def test() -> None:
        raw, server = await serve(answer)
        up = upstream(raw.port)
        await up.start()
        try:
            with pytest.raises(UpstreamError, match=re.escape('status 429: {"error":"busy"}')):
                await post(up)
            assert await post(up) == JSON_OK
            assert raw.connections == 1
        finally:
            await up.close()
            server.close()

    run(test, loop_kind)


@LOOPS
@pytest.mark.parametrize(
    "reply",
    [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 7\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 4\r\n\r\n\x1f\x8b\x08\x00",
    ],
    ids=["garbage", "two-lengths", "unrequested-gzip"],
)
def test_unreadable_answers_are_server_errors_and_drop_the_connection(
    loop_kind: str, reply: bytes
) -> None:
    async def answer(request: Request, writer: asyncio.StreamWriter, index: int) -> bool:
        writer.write(reply if index == 0 else ok())
        return True

    async def test() -> None:
        raw, server = await serve(answer)
        up = upstream(raw.port)
        await up.start()
        try:
            with pytest.raises(UpstreamError) as caught:
                await post(up)
            assert caught.value.kind == "server"
            assert await post(up) == JSON_OK
            assert raw.connections == 2
        finally:
            await up.close()
            server.close()

    run(test, loop_kind)


@LOOPS
def test_reset_before_the_answer_is_a_connect_failure(loop_kind: str) -> None:
    async def answer(request: Request, writer: asyncio.StreamWriter, index: int) -> bool:
        if index == 0:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
            return False
        writer.write(ok())
        return True

    async def test() -> None:
        raw, server = await serve(answer)
        up = upstream(raw.port)
        await up.start()
        try:
            with pytest.raises(UpstreamError) as caught:
                await post(up)
            assert caught.value.kind == "connect"
            assert await post(up) == JSON_OK
        finally:
            await up.close()
            server.close()

    run(test, loop_kind)


@LOOPS
def test_header_injection_is_refused_before_anything_is_sent(loop_kind: str) -> None:
    async def answer(request: Request, writer: asyncio.StreamWriter, index: int) -> bool:
        writer.write(ok())
        return True

    async def test() -> None:
        raw, server = await serve(answer)
        up = upstream(raw.port)
        await up.start()
        try:
            for bad in ("x\r\nevil: 1", "x\nevil: 1", "x\rx"):
                with pytest.raises(UpstreamError):
                    await post(up, {"x-request-id": bad})
        finally:
            await up.close()
            server.close()
        assert raw.requests == []

    run(test, loop_kind)


@LOOPS
def test_pool_caps_connections_and_queues_the_rest(loop_kind: str) -> None:
    release = asyncio.Event

    async def test() -> None:
        gate = release()

        async def answer(request: Request, writer: asyncio.StreamWriter, index: int) -> bool:
            await gate.wait()
            writer.write(ok(b'{"n":%d}' % index))
            return True

        raw, server = await serve(answer)
        up = upstream(raw.port, max_connections=2)
        await up.start()
        try:
            calls = [asyncio.create_task(post(up)) for _ in range(6)]
            await raw.until_requests(2)
            assert raw.open_now == 2
            gate.set()
            bodies = await asyncio.gather(*calls)
            assert sorted(bodies) == sorted(b'{"n":%d}' % i for i in range(6))
            assert raw.most_open == 2
        finally:
            await up.close()
            server.close()

    run(test, loop_kind)


@LOOPS
def test_a_queued_request_gives_up_at_its_deadline(loop_kind: str) -> None:
    async def test() -> None:
        hold = asyncio.Event()

        async def answer(request: Request, writer: asyncio.StreamWriter, index: int) -> bool:
            await hold.wait()
            writer.write(ok())
            return True

        raw, server = await serve(answer)
        up = upstream(raw.port, max_connections=1)
        await up.start()
        pool = up._pool
        assert pool is not None
        try:
            first = asyncio.create_task(post(up))
            await raw.until_requests(1)
            with pytest.raises(TimeoutError):
                await pool.acquire(0.2)  # the one slot is busy for longer than that
            assert pool.open_connections == 1
            hold.set()
            assert await first == JSON_OK
            assert await post(up) == JSON_OK  # the pool is whole again: the slot was not lost
        finally:
            await up.close()
            server.close()
        assert raw.connections == 1

    run(test, loop_kind)


@LOOPS
def test_a_cancelled_request_closes_its_connection_instead_of_reusing_it(loop_kind: str) -> None:
    async def test() -> None:
        async def answer(request: Request, writer: asyncio.StreamWriter, index: int) -> bool:
            if index == 0:
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\nhalf")
                await asyncio.sleep(30)
                return False
            writer.write(ok())
            return True

        raw, server = await serve(answer)
        up = upstream(raw.port)
        await up.start()
        try:
            call = asyncio.create_task(post(up))
            await raw.until_requests(1)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            assert await post(up) == JSON_OK
            assert raw.connections == 2
        finally:
            await up.close()
            server.close()

    run(test, loop_kind)


@LOOPS
def test_a_stream_nobody_reads_stops_reading_from_the_provider(loop_kind: str) -> None:
    """Backpressure: with the consumer stalled, the provider's writes stall too (its socket
    buffers fill), rather than the client buffering the whole stream."""
    total = 64 * 1024 * 1024
    event = b"data: " + b"x" * 1017 + b"\n\n"  # 1 KiB per event

    async def test() -> None:
        sent = [0]

        async def answer(request: Request, writer: asyncio.StreamWriter, index: int) -> bool:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n")
            block = event * 64
            while sent[0] < total:
                writer.write(block)
                await writer.drain()
                sent[0] += len(block)
            return False

        raw, server = await serve(answer)
        up = upstream(raw.port)
        await up.start()
        try:
            async with up.open_stream("/chat/completions", b"{}", {}, mapper) as batches:
                first = await anext(batches)
                assert first and first[0] == b"x" * 1017
                previous = -1
                while previous != sent[0]:  # wait until the provider's writes stop
                    previous = sent[0]
                    await asyncio.sleep(0.2)
                assert sent[0] < 24 * 1024 * 1024, sent[0]
        finally:
            await up.close()
            server.close()

    run(test, loop_kind)
