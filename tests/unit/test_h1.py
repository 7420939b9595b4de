"""The lean HTTP/1.1 client of the chat hot path: framing, keep-alive and failures, against raw
scripted servers on 127.0.0.1 (``tests/fakes/raw_http.py``), on the stdlib loop and on uvloop.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Mapping
from typing import Any

import pytest

from providers.base import UpstreamError
from providers.h1 import MAX_HEAD_BYTES, MAX_HEAD_FIELDS
from tests.fakes.raw_http import (
    JSON_OK,
    LOOPS,
    Request,
    always_ok,
    ok,
    pool_drained,
    post,
    reset,
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


@LOOPS
@pytest.mark.parametrize(
    ("reply", "ending"),
    [
        (b'HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n{"trunc', "reset"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial", "reset"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial", "close"),
        (b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\n{"trun\r\n', "reset"),
        (b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\n{"trun\r\n', "close"),
        (b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\n{"trun\r\n0\r\n', "close"),
    ],
    ids=[
        "eof-body-reset",
        "length-reset",
        "length-close",
        "chunked-reset",
        "chunked-close",
        "chunked-close-in-trailers",
    ],
)
def test_a_body_cut_short_is_a_failure_never_a_short_answer(
    loop_kind: str, reply: bytes, ending: str
) -> None:
    async def answer(request: Request, writer: asyncio.StreamWriter, index: int) -> bool:
        if index > 0:
            writer.write(ok())
            return True
        writer.write(reply)
        if ending == "reset":
            return await reset(writer)
        return False

    async def test() -> None:
        async with scripted(answer) as (raw, up):
            with pytest.raises(UpstreamError) as caught:
                await post(up)
            assert caught.value.kind == "connect"  # retryable, like any lost connection
            assert await post(up) == JSON_OK
            assert raw.connections == 2

    run(test, loop_kind)


@LOOPS
def test_a_head_over_the_cap_is_refused_while_it_arrives(loop_kind: str) -> None:
    filler = b"x-filler: " + b"f" * 1000 + b"\r\n"
    big_body = b'{"pad":"' + b"p" * (3 * MAX_HEAD_BYTES) + b'"}'
    many_fields = b"".join(b"x-%d: 1\r\n" % n for n in range(MAX_HEAD_FIELDS + 1))

    async def answer(request: Request, writer: asyncio.StreamWriter, index: int) -> bool:
        if index == 0:  # a head of 20 MB: the client must stop reading long before its end
            writer.write(b"HTTP/1.1 200 OK\r\n")
            with contextlib.suppress(ConnectionError):
                for _ in range(20 * 1024):
                    writer.write(filler)
                    await writer.drain()
            return False
        if index == 1:  # a small head with a body far past the cap, in large reads: fine
            writer.write(ok(big_body))
            return True
        if index == 2:  # a head just under the cap, in many small reads: fine
            writer.write(b"HTTP/1.1 200 OK\r\n")
            for _ in range(MAX_HEAD_BYTES // len(filler) - 1):
                writer.write(filler)
                await writer.drain()
            writer.write(b"content-length: %d\r\n\r\n%s" % (len(JSON_OK), JSON_OK))
            return True
        if index == 3:  # few bytes but too many fields
            writer.write(ok(extra=many_fields))
            return True
        writer.write(ok())
        return True

    async def test() -> None:
        async with scripted(answer) as (raw, up):
            with pytest.raises(UpstreamError, match="head was too large") as caught:
                await post(up)
            assert caught.value.kind == "server"
            assert await post(up) == big_body
            assert await post(up) == JSON_OK
            assert raw.connections == 2
            with pytest.raises(UpstreamError, match="head was too large"):
                await post(up)
            assert await post(up) == JSON_OK
            assert raw.connections == 3  # the refused answer's connection was discarded

    run(test, loop_kind)


def capture_headers(seen: list[Mapping[str, str]]) -> Any:
    """An error mapper that keeps the headers of each error answer it is given."""

    def on_error(status: int, body: bytes, headers: Any, scrubber: Any = None) -> UpstreamError:
        seen.append(dict(headers))
        return UpstreamError("server", body.decode())

    return on_error


@LOOPS
def test_obsolete_line_folds_are_unfolded_into_one_space(loop_kind: str) -> None:
    body = b'{"text":"a\r\n b"}'  # a fold-like run in the body is the body's business
    pieces = [
        # folds by SP, by HTAB, with whitespace around them, several in one value
        [
            b"HTTP/1.1 418 Folded\r\nx-a: one\r\n two\r\nx-b: x \r\n\t \ty\r\n  z\r\n"
            + b"content-length: %d\r\n\r\n%s" % (len(body), body)
        ],
        # a fold split across reads, in a head split across reads, after a folded 103
        [
            b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>;\r\n rel=preload\r\n\r\nHTTP/1.1 418 F",
            b"olded\r\nx-a: one\r\n",
            b" two\r\nx-b: x\r",
            b"\n\ty z\r\ntransfer-encoding: chunked\r\n\r",
            b"\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body),
        ],
    ]

    async def answer(request: Request, writer: asyncio.StreamWriter, index: int) -> bool:
        if index >= len(pieces):
            writer.write(ok())
            return True
        for piece in pieces[index]:
            writer.write(piece)
            await writer.drain()
        return True

    async def test() -> None:
        seen: list[Mapping[str, str]] = []
        async with scripted(answer) as (raw, up):
            for _ in pieces:
                with pytest.raises(UpstreamError, match=re.escape(body.decode())):
                    await up.post_json("/chat/completions", b"{}", {}, capture_headers(seen))
            assert await post(up) == JSON_OK
            assert raw.connections == 1  # unfolded answers leave the connection reusable
        assert len(seen) == 2
        for headers in seen:
            assert headers["x-a"] == "one two"
            assert headers["x-b"] == "x y z"

    run(test, loop_kind)


@LOOPS
def test_chunked_trailers_are_read_and_dropped(loop_kind: str) -> None:
    async def answer(request: Request, writer: asyncio.StreamWriter, index: int) -> bool:
        if index == 0:
            writer.write(
                b"HTTP/1.1 500 Oops\r\ntransfer-encoding: chunked\r\ntrailer: x-checksum\r\n\r\n"
                b'4\r\n{"a"\r\n4\r\n:12}\r\n0\r\nx-checksum: abc\r\nx-more: 1\r\n\r\n'
            )
            return True
        if index == 1:  # trailers in a read of their own
            writer.write(b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{"b"\r\n')
            await writer.drain()
            writer.write(b"3\r\n:2}\r\n0\r\nx-checksum: def\r\n")
            await writer.drain()
            writer.write(b"\r\n")
            return True
        writer.write(ok())
        return True

    async def test() -> None:
        seen: list[Mapping[str, str]] = []
        async with scripted(answer) as (raw, up):
            with pytest.raises(UpstreamError, match=re.escape('{"a":12}')):
                await up.post_json("/chat/completions", b"{}", {}, capture_headers(seen))
            assert "x-checksum" not in seen[0] and seen[0]["trailer"] == "x-checksum"
            assert await post(up) == b'{"b":2}'
            assert await post(up) == JSON_OK
            assert raw.connections == 1  # the body was complete: the connection stayed reusable

    run(test, loop_kind)


@LOOPS
def test_interim_answers_before_the_final_one_are_skipped(loop_kind: str) -> None:
    early_hints = b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload; as=style\r\n\r\n"

    async def answer(request: Request, writer: asyncio.StreamWriter, index: int) -> bool:
        if index == 0:  # a 103 with the answer in the same read
            writer.write(early_hints + ok(b'{"n":0}'))
        elif index == 1:  # 100, then two 103s, each in a read of its own, then the answer
            for piece in (b"HTTP/1.1 100 Continue\r\n\r\n", early_hints, early_hints):
                writer.write(piece)
                await writer.drain()
            writer.write(ok(b'{"n":1}'))
        else:  # a 103 before an error answer: the error's own headers reach the mapper
            writer.write(
                early_hints + b"HTTP/1.1 503 Busy\r\nx-why: load\r\ncontent-length: 2\r\n\r\nno"
            )
        return True

    async def test() -> None:
        seen: list[Mapping[str, str]] = []
        async with scripted(answer) as (raw, up):
            assert await post(up) == b'{"n":0}'
            assert await post(up) == b'{"n":1}'
            with pytest.raises(UpstreamError, match="no"):
                await up.post_json("/chat/completions", b"{}", {}, capture_headers(seen))
            assert raw.connections == 1
        assert seen == [{"x-why": "load", "content-length": "2"}]

    run(test, loop_kind)
