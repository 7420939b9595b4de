"""The lean HTTP/1.1 client of the chat hot path: framing, keep-alive and failures, against raw
scripted servers on 127.0.0.1 (``tests/fakes/raw_http.py``), on the stdlib loop and on uvloop.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from providers.base import UpstreamError
from tests.fakes.raw_http import (
    JSON_OK,
    LOOPS,
    Request,
    always_ok,
    ok,
    pool_drained,
    post,
    run,
    scripted,
)


@LOOPS
def test_keep_alive_reuses_one_connection_and_sends_a_complete_head(loop_kind: str) -> None:
    async def answer(request: Request, writer: asyncio.StreamWriter, index: int) -> bool:
        writer.write(ok(b'{"n":%d}' % index))
        return True

    async def test() -> None:
        async with scripted(answer) as (raw, up):
            assert await post(up) == b'{"n":0}'
            assert await post(up, {"x-request-id": "req_2"}) == b'{"n":1}'
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
        async with scripted(answer) as (raw, up):
            assert await post(up) == b'{"a":12}'
            assert await post(up) == b'{"b":2}'
            assert await post(up) == b'{"c":3}'
            assert raw.connections == 1
            assert await post(up) == b'{"c":3}'  # the closed connection was not reused
            assert raw.connections == 2

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
        async with scripted(answer) as (raw, up):
            for expected_connections in (1, 2, 3):
                assert await post(up) == JSON_OK
                assert raw.connections == expected_connections
                if expected_connections < 3:
                    await pool_drained(up)  # the server's close has reached the pool

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
        async with scripted(answer) as (raw, up):
            with pytest.raises(UpstreamError, match=re.escape('status 429: {"error":"busy"}')):
                await post(up)
            assert await post(up) == JSON_OK
            assert raw.connections == 1

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
        async with scripted(answer) as (raw, up):
            with pytest.raises(UpstreamError) as caught:
                await post(up)
            assert caught.value.kind == "server"
            assert await post(up) == JSON_OK
            assert raw.connections == 2

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
        async with scripted(answer) as (_, up):
            with pytest.raises(UpstreamError) as caught:
                await post(up)
            assert caught.value.kind == "connect"
            assert await post(up) == JSON_OK

    run(test, loop_kind)


@LOOPS
def test_header_injection_is_refused_before_anything_is_sent(loop_kind: str) -> None:
    async def test() -> None:
        async with scripted(always_ok) as (raw, up):
            for bad in ("x\r\nevil: 1", "x\nevil: 1", "x\rx"):
                with pytest.raises(UpstreamError):
                    await post(up, {"x-request-id": bad})
        assert raw.requests == []

    run(test, loop_kind)
