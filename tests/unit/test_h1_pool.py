"""The lean HTTP/1.1 client's pool, streams and TLS: connection caps and queue deadlines,
cancellation, backpressure, and https with a private CA, against raw scripted servers on
127.0.0.1 (``tests/fakes/raw_http.py``), on the stdlib loop and on uvloop.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import trustme

from providers.base import UpstreamError
from tests.fakes.raw_http import (
    JSON_OK,
    LOOPS,
    Request,
    always_ok,
    mapper,
    ok,
    pool_drained,
    post,
    run,
    scripted,
    serve,
    upstream,
)


@LOOPS
def test_pool_caps_connections_and_queues_the_rest(loop_kind: str) -> None:
    release = asyncio.Event

    async def test() -> None:
        gate = release()

        async def answer(request: Request, writer: asyncio.StreamWriter, index: int) -> bool:
            await gate.wait()
            writer.write(ok(b'{"n":%d}' % index))
            return True

        async with scripted(answer, max_connections=2) as (raw, up):
            calls = [asyncio.create_task(post(up)) for _ in range(6)]
            await raw.until_requests(2)
            assert raw.open_now == 2
            gate.set()
            bodies = await asyncio.gather(*calls)
            assert sorted(bodies) == sorted(b'{"n":%d}' % i for i in range(6))
            assert raw.most_open == 2

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

        async with scripted(answer) as (raw, up):
            call = asyncio.create_task(post(up))
            await raw.until_requests(1)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            assert await post(up) == JSON_OK
            assert raw.connections == 2

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

        async with (
            scripted(answer) as (_, up),
            up.open_stream("/chat/completions", b"{}", {}, mapper) as batches,
        ):
            first = await anext(batches)
            assert first and first[0] == b"x" * 1017
            previous = -1
            while previous != sent[0]:  # wait until the provider's writes stop
                previous = sent[0]
                await asyncio.sleep(0.2)
            assert sent[0] < 24 * 1024 * 1024, sent[0]

    run(test, loop_kind)


@LOOPS
def test_https_with_a_private_ca_reuses_its_connection_and_streams(
    loop_kind: str, tmp_path: Path
) -> None:
    """TLS through asyncio's ssl: the provider option ``ca_file`` adds a private CA to the
    system's; without it the same server is refused (an unverified certificate never passes)."""
    authority = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_tls)
    ca_file = tmp_path / "private-ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))

    async def answer(request: Request, writer: asyncio.StreamWriter, index: int) -> bool:
        if index < 2:
            writer.write(ok(b'{"n":%d}' % index))
            return True
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n")
        writer.write(b'data: {"a":1}\n\ndata: {"b":2}\n\n')
        return False

    async def test() -> None:
        raw, server = await serve(answer, server_tls)
        trusting = upstream(raw.port, "https", options={"ca_file": str(ca_file)})
        untrusting = upstream(raw.port, "https")
        await trusting.start()
        await untrusting.start()
        try:
            with pytest.raises(UpstreamError) as refused:
                await post(untrusting)
            assert refused.value.kind == "connect"
            assert raw.requests == []
            assert await post(trusting) == b'{"n":0}'
            assert await post(trusting) == b'{"n":1}'
            async with trusting.open_stream("/chat/completions", b"{}", {}, mapper) as batches:
                events = [event async for batch in batches for event in batch]
            assert events == [b'{"a":1}', b'{"b":2}']
        finally:
            await trusting.close()
            await untrusting.close()
            server.close()
        assert raw.connections == 1  # the refused handshake never got here; the rest shared one

    run(test, loop_kind)


@LOOPS
def test_idle_connections_are_closed_after_the_keep_alive_window(loop_kind: str) -> None:
    async def test() -> None:
        async with scripted(always_ok) as (raw, up):
            pool = up._pool
            assert pool is not None
            pool._keepalive_s = 0.1  # the default is 15 s
            assert await post(up) == JSON_OK
            assert pool.open_connections == 1
            await pool_drained(up)  # the sweep closed it; nothing else would have
            assert await post(up) == JSON_OK  # a fresh connection, not the dead one
            assert raw.connections == 2

    run(test, loop_kind)
