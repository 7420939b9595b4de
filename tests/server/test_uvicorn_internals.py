"""What ``gateway/http/server_protocol.py`` relies on in uvicorn's private ``HttpToolsProtocol``.

The gateway's protocol overrides uvicorn's parser callbacks and reads and writes a few of its
attributes. None of that is public API, so a uvicorn release may rename any of it without a
failing import; pyproject.toml holds uvicorn to the tested series, and these tests name the
exact callback or attribute that moved when the series is raised. The protocol is driven here
on a real event loop with an in-memory transport, so every check is about uvicorn's own code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from gateway.http.disconnect import HOOKS_EXTENSION, DisconnectHooks
from gateway.http.server_protocol import DeadlineProtocol, _HeadHolder, deadline_protocol

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# The callbacks DeadlineProtocol overrides and calls through with super().
OVERRIDDEN = (
    "connection_made",
    "connection_lost",
    "on_message_begin",
    "on_headers_complete",
    "on_message_complete",
    "on_response_complete",
    "data_received",
    "send_400_response",
)
# The callback DeadlineProtocol writes out in full (uvicorn's body and its own checks), so a
# change in uvicorn's version of it must show here.
REPLACED = ("on_header",)


class MemoryTransport(asyncio.Transport):
    """A transport that keeps what is written, each write call as one entry."""

    def __init__(self) -> None:
        super().__init__({"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8080)})
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        self.writes.append(b"".join(bytes(part) for part in list_of_data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class ScopeKeeper:
    """An ASGI app that answers 200 "ok" and keeps the scopes it was called with."""

    def __init__(self) -> None:
        self.scopes: list[Message] = []
        self.answered = asyncio.Event()

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        self.scopes.append(scope)
        await receive()
        headers = [(b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})
        self.answered.set()


def protocol_for(app: ScopeKeeper, loop: asyncio.AbstractEventLoop) -> DeadlineProtocol:
    config = uvicorn.Config(app, http="httptools", lifespan="off", log_level="warning")
    config.load()
    protocol_class = deadline_protocol(5.0, 5.0)
    return protocol_class(config=config, server_state=ServerState(), app_state={}, _loop=loop)


async def one_request(app: ScopeKeeper) -> tuple[DeadlineProtocol, MemoryTransport]:
    protocol = protocol_for(app, asyncio.get_running_loop())
    assert getattr(protocol, "loop", None) is asyncio.get_running_loop(), (
        "uvicorn's HttpToolsProtocol no longer keeps its event loop in .loop "
        "(DeadlineProtocol arms its deadline timer on it)"
    )
    transport = MemoryTransport()
    protocol.connection_made(transport)
    assert getattr(protocol, "transport", None) is transport, (
        "uvicorn's HttpToolsProtocol no longer keeps the connection's transport in .transport "
        "(DeadlineProtocol closes it at a deadline and wraps it for each response)"
    )
    protocol.data_received(b"GET /probe HTTP/1.1\r\nhost: test\r\n\r\n")
    await asyncio.wait_for(app.answered.wait(), 5)
    await asyncio.sleep(0)  # the held head's end-of-turn flush, if it had been left alone
    return protocol, transport


def test_the_overridden_callbacks_are_uvicorns_own() -> None:
    for name in OVERRIDDEN + REPLACED:
        assert callable(vars(HttpToolsProtocol).get(name)), (
            f"uvicorn's HttpToolsProtocol no longer defines {name}(), which "
            "gateway/http/server_protocol.py overrides"
        )
        assert name in vars(DeadlineProtocol), name


def test_the_request_cycle_writes_through_its_transport_attribute() -> None:
    async def scenario() -> None:
        app = ScopeKeeper()
        protocol, transport = await one_request(app)
        cycle = getattr(protocol, "cycle", None)
        assert isinstance(cycle, RequestResponseCycle), (
            "uvicorn's HttpToolsProtocol no longer keeps the current request in .cycle "
            "(DeadlineProtocol swaps the cycle's transport after on_headers_complete)"
        )
        assert isinstance(getattr(cycle, "transport", None), _HeadHolder), (
            "uvicorn's RequestResponseCycle no longer has a .transport attribute to replace"
        )
        # Head and body in one write shows the cycle really writes through that attribute.
        assert len(transport.writes) == 1, transport.writes
        response = transport.writes[0]
        assert response.startswith(b"HTTP/1.1 200 OK\r\n") and response.endswith(b"\r\n\r\nok")

    asyncio.run(scenario())


def test_each_request_scope_carries_the_disconnect_hooks() -> None:
    async def scenario() -> None:
        app = ScopeKeeper()
        protocol, _ = await one_request(app)
        assert isinstance(getattr(protocol, "scope", None), dict), (
            "uvicorn's HttpToolsProtocol no longer keeps the request's scope in .scope "
            "(DeadlineProtocol adds its extension there in on_message_begin)"
        )
        (scope,) = app.scopes
        assert isinstance(scope["extensions"][HOOKS_EXTENSION]["hooks"], DisconnectHooks)
        hooks = scope["extensions"][HOOKS_EXTENSION]["hooks"]
        protocol.connection_lost(None)
        assert hooks.lost

    asyncio.run(scenario())


def test_extensions_uvicorn_offers_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """A uvicorn that starts offering extensions of its own keeps them beside ours."""
    original = HttpToolsProtocol.on_message_begin

    def with_extensions(self: HttpToolsProtocol) -> None:
        original(self)
        self.scope["extensions"] = {"http.response.trailers": {}}

    monkeypatch.setattr(HttpToolsProtocol, "on_message_begin", with_extensions)

    async def scenario() -> None:
        app = ScopeKeeper()
        await one_request(app)
        (scope,) = app.scopes
        assert set(scope["extensions"]) == {"http.response.trailers", HOOKS_EXTENSION}

    asyncio.run(scenario())


def test_on_header_written_out_keeps_the_fields_as_uvicorn_does() -> None:
    """Same head, uvicorn's protocol and ours: the same scope headers and Expect handling."""
    head = (
        b"POST /probe HTTP/1.1\r\nHost: test\r\nX-Mixed-Case: Value \t \r\n"
        b"Expect: 100-Continue\r\nContent-Length: 2\r\n\r\n"
    )
    seen = []
    for protocol_class in (HttpToolsProtocol, DeadlineProtocol):

        async def scenario(protocol_class: type[HttpToolsProtocol] = protocol_class) -> None:
            config = uvicorn.Config(ScopeKeeper(), http="httptools", lifespan="off")
            config.load()
            loop = asyncio.get_running_loop()
            state = ServerState()
            protocol = protocol_class(config=config, server_state=state, app_state={}, _loop=loop)
            protocol.connection_made(MemoryTransport())
            protocol.data_received(head)
            headers = getattr(protocol, "headers", None)
            assert isinstance(headers, list), (
                "uvicorn's HttpToolsProtocol no longer keeps the request's fields in .headers "
                "(DeadlineProtocol's on_header appends to it)"
            )
            assert headers is protocol.scope["headers"]
            expect = getattr(protocol, "expect_100_continue", None)
            seen.append((list(headers), expect))
            protocol.connection_lost(None)

        asyncio.run(scenario())
    assert seen[0] == seen[1], seen
    assert seen[0][1] is True  # the head does ask for 100-continue


def test_a_parser_error_is_answered_through_send_400_response() -> None:
    """uvicorn answers a parser error by calling send_400_response inside its except clause:
    DeadlineProtocol answers llhttp's own refusal of a second Content-Length there, with the
    envelope (and the server's default headers, which uvicorn keeps in server_state)."""

    async def scenario() -> None:
        protocol = protocol_for(ScopeKeeper(), asyncio.get_running_loop())
        assert isinstance(getattr(protocol.server_state, "default_headers", None), list)
        transport = MemoryTransport()
        protocol.connection_made(transport)
        protocol.data_received(
            b"POST /probe HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"
        )
        (answer,) = transport.writes
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer
        assert b'"field":"Content-Length"' in answer and transport.closed

    asyncio.run(scenario())
