"""The gateway's server protocol writes a response's head together with its first body bytes.

Holding the head back must never hold it up: an app that sends its head and then waits still
gets the head out at the end of that loop turn, an interim ``100 Continue`` still reaches a
client that waits for it, and answers without a body (HEAD, 204) still end.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

import pytest

from gateway.http.server_protocol import deadline_protocol
from tests.fakes.server import UvicornServer

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class PausingApp:
    """Answers ``/pause`` with its head, then waits for ``release`` before the body; ``/empty``
    with 204; ``/echo`` with the request body it read (after any ``100 Continue``)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/empty":
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        if scope["path"] == "/echo":
            message = await receive()
            body = message.get("body", b"")
            headers = [(b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"x-head", b"early")]}
        )
        await asyncio.to_thread(self.release.wait, 5)  # off the loop: the loop keeps running
        await send({"type": "http.response.body", "body": b"late"})


@pytest.fixture
def served() -> Iterator[tuple[UvicornServer, PausingApp]]:
    app = PausingApp()
    with UvicornServer(app, http=deadline_protocol(5.0, 5.0), lifespan="off") as server:
        yield server, app


def connect(server: UvicornServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=5)


def read_until(sock: socket.socket, marker: bytes, count: int = 1) -> bytes:
    """Bytes from ``sock`` until ``marker`` has arrived ``count`` times (the socket's timeout
    bounds the wait)."""
    data = b""
    while data.count(marker) < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_a_head_is_sent_even_while_the_app_waits_before_its_body(
    served: tuple[UvicornServer, PausingApp],
) -> None:
    server, app = served
    with connect(server) as sock:
        sock.sendall(b"GET /pause HTTP/1.1\r\nhost: x\r\n\r\n")
        head = read_until(sock, b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"x-head: early" in head
        assert b"late" not in head  # the body was not sent yet: the head left on its own
        app.release.set()
        rest = head.split(b"\r\n\r\n", 1)[1] + read_until(sock, b"late")
        assert b"late" in rest


def test_an_interim_100_continue_reaches_a_client_waiting_for_it(
    served: tuple[UvicornServer, PausingApp],
) -> None:
    server, _ = served
    with connect(server) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 5\r\n\r\n"
        )
        interim = read_until(sock, b"\r\n\r\n")
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n")
        sock.sendall(b"hello")
        answer = read_until(sock, b"hello")
        assert b"HTTP/1.1 200 OK" in answer and answer.endswith(b"hello")


def test_an_answer_without_a_body_ends(served: tuple[UvicornServer, PausingApp]) -> None:
    server, _ = served
    with connect(server) as sock:
        sock.sendall(
            b"GET /empty HTTP/1.1\r\nhost: x\r\n\r\nGET /empty HTTP/1.1\r\nhost: x\r\n\r\n"
        )
        answers = read_until(sock, b"HTTP/1.1 204 No Content\r\n", count=2)
        assert answers.count(b"HTTP/1.1 204 No Content\r\n") == 2
        assert answers.endswith(b"\r\n\r\n")
