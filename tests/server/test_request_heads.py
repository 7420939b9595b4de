"""Request heads are held to their limits while they arrive, and single-value headers come once.

A head that passes the limits is refused as soon as the gateway has seen enough of it, with the
error envelope and ``Connection: close``: a 64 MiB header value costs the gateway no more than
a normal request, and a second ``Authorization`` (or ``Idempotency-Key``, ``Content-Length``,
``Content-Type``, ``X-Request-Id``) is a 400, never silently the one that wins.
"""

from __future__ import annotations

import asyncio
import itertools
import select
import socket
from collections.abc import Iterable
from typing import Any

import httpx
import orjson
import pytest

from gateway.contract.errors import ERROR_CODES
from gateway.http.request_head import MAX_HEADER_BYTES, MAX_HEADER_FIELDS
from tests.conftest import DEV_KEY, GatewayFactory, base_config
from tests.fakes.server import UvicornServer
from tests.server.test_uvicorn_internals import MemoryTransport, ScopeKeeper, protocol_for

MiB = 1024 * 1024
PIECE = 64 * 1024
CHAT_BODY = orjson.dumps({"model": "local-chat", "messages": [{"role": "user", "content": "hi"}]})


@pytest.fixture
def server(gateway_factory: GatewayFactory) -> UvicornServer:
    return gateway_factory(base_config())


def flood(server: UvicornServer, start: bytes, pieces: Iterable[bytes]) -> tuple[bytes, int]:
    """Send ``start`` then each piece as its own write, stopping once an answer is waiting or the
    gateway has closed; then read the answer. Returns the answer and the bytes sent."""
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        try:
            for piece in itertools.chain([start], pieces):
                if select.select([sock], [], [], 0)[0]:
                    break
                sock.sendall(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the gateway closed while the head was still coming: its answer is waiting
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass  # the rest of the head, unread, turns the gateway's close into a reset
    return answer, sent


def refused(answer: bytes, field: str) -> dict[str, Any]:
    """The envelope of a 400 ``invalid_request`` about ``field``, sent with its request id and
    ``Connection: close``."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.split(b"\r\n")
    assert status_line == b"HTTP/1.1 400 Bad Request", answer[:300]
    headers = {name.lower(): value for name, value in (line.split(b": ", 1) for line in lines)}
    error: dict[str, Any] = orjson.loads(body)["error"]
    assert error["code"] == "invalid_request" and ERROR_CODES["invalid_request"].status == 400
    assert error["details"][0]["field"] == field
    assert headers[b"x-request-id"] == error["request_id"].encode()
    assert headers[b"connection"] == b"close"
    assert int(headers[b"content-length"]) == len(body)
    return error


def test_a_64_mib_header_value_is_refused_while_it_arrives(server: UvicornServer) -> None:
    start = b"GET /v1/health HTTP/1.1\r\nHost: gateway\r\nX-Big: "
    total = 64 * MiB
    pieces = itertools.chain(itertools.repeat(b"a" * PIECE, total // PIECE), [b"\r\n\r\n"])
    cpu_before = server.cpu_seconds()
    answer, sent = flood(server, start, pieces)
    cpu = server.cpu_seconds() - cpu_before
    error = refused(answer, "headers")
    assert error["details"][0]["issue"] == "request head over 131072 bytes"
    assert sent < total // 4  # refused long before the value ended
    # Before the head was capped as it arrived: 6.5 s of the gateway's CPU, quadratic in size.
    assert cpu < 1.0, f"the gateway spent {cpu:.2f} s of CPU on one head"
    assert httpx.get(server.url + "/v1/health").status_code == 200


def test_thousands_of_large_fields_are_refused_at_the_byte_limit(server: UvicornServer) -> None:
    start = b"GET /v1/health HTTP/1.1\r\nHost: gateway\r\n"
    value = b"v" * (32 * 1024)
    fields = (b"X-H%d: %s\r\n" % (index, value) for index in range(2048))
    answer, sent = flood(server, start, itertools.chain(fields, [b"\r\n"]))
    error = refused(answer, "headers")
    assert error["details"][0]["issue"] == f"header fields over {MAX_HEADER_BYTES} bytes in all"
    assert sent < 2048 * len(value) // 4


def test_too_many_fields_are_refused(server: UvicornServer) -> None:
    start = b"GET /v1/health HTTP/1.1\r\nHost: gateway\r\n"
    fields = (b"X-H%d: v\r\n" % index for index in range(2048))
    answer, _ = flood(server, start, itertools.chain(fields, [b"\r\n"]))
    error = refused(answer, "headers")
    assert error["details"][0]["issue"] == f"more than {MAX_HEADER_FIELDS} header fields"


def test_the_field_past_the_limit_is_refused_as_soon_as_it_is_complete() -> None:
    """Driven read by read: nothing is answered within the limit, the refusal comes as the
    parser completes field 101 (when the next field begins), and the connection closes."""

    async def scenario() -> None:
        app = ScopeKeeper()
        protocol = protocol_for(app, asyncio.get_running_loop())
        transport = MemoryTransport()
        protocol.connection_made(transport)
        protocol.data_received(b"GET /v1/health HTTP/1.1\r\n")
        for index in range(MAX_HEADER_FIELDS + 1):  # Host is not needed by the parser
            protocol.data_received(b"X-H%d: v\r\n" % index)
        assert transport.writes == [] and not transport.closed
        protocol.data_received(b"X")
        (answer,) = transport.writes
        refused(answer, "headers")
        assert transport.closed and app.scopes == []

    asyncio.run(scenario())


def test_trailer_fields_may_repeat_a_header_of_the_head() -> None:
    """A chunked body's trailer fields reach the same parser callback after the head; they are
    not second copies of the head's fields."""

    async def scenario() -> None:
        app = ScopeKeeper()
        protocol = protocol_for(app, asyncio.get_running_loop())
        transport = MemoryTransport()
        protocol.connection_made(transport)
        protocol.data_received(
            b"POST /probe HTTP/1.1\r\nContent-Type: text/plain\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nContent-Type: x\r\n\r\n"
        )
        await asyncio.wait_for(app.answered.wait(), 5)
        assert not transport.closed and len(app.scopes) == 1

    asyncio.run(scenario())


SINGLE = [
    ("Authorization", b"Bearer wrong-key", b"Bearer " + DEV_KEY.encode()),
    ("Idempotency-Key", b"key-a", b"key-b"),
    ("Content-Length", b"%d" % len(CHAT_BODY), b"%d" % len(CHAT_BODY)),
    ("Content-Type", b"text/plain", b"application/json"),
    ("X-Request-Id", b"A", b"B"),
]


@pytest.mark.parametrize(("name", "first", "second"), SINGLE, ids=[row[0] for row in SINGLE])
def test_a_single_value_header_sent_twice_is_400(
    server: UvicornServer, name: str, first: bytes, second: bytes
) -> None:
    lines = {
        "Authorization": b"Bearer " + DEV_KEY.encode(),
        "Content-Type": b"application/json",
        "Content-Length": b"%d" % len(CHAT_BODY),
    }
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n"
    for other, value in lines.items():
        if other != name:
            head += other.encode() + b": " + value + b"\r\n"
    head += b"%s: %s\r\n%s: %s\r\n\r\n" % (name.encode(), first, name.encode(), second)
    answer, _ = flood(server, head + CHAT_BODY, [])
    error = refused(answer, name)
    assert error["details"][0]["issue"] == "sent more than once"
    assert error["request_id"] not in ("A", "B")
    # One copy of each is served as ever.
    single = {**{k: v.decode() for k, v in lines.items()}, name: second.decode()}
    ok = httpx.post(server.url + "/v1/chat/completions", content=CHAT_BODY, headers=single)
    assert ok.status_code == 200, ok.text
