"""uvicorn's httptools protocol with deadlines for a request's head and body, and a direct line
to tell a request that its client left (``gateway/http/disconnect.py``).

uvicorn times a connection out only while it sits idle between requests: a client that opens a
connection and never finishes its headers (slowloris), or sends a body a byte at a time, holds a
socket and a file descriptor for ever. This protocol closes such a connection once the head has
taken longer than ``header_timeout_s`` (counted from the connection's first byte, or from the
connection itself for a client that sends nothing) or the body longer than ``body_timeout_s``.
The client gets no answer: it sent no request worth one.

It also holds each head to the limits of ``gateway/http/request_head.py`` while it is parsed, so no
head costs more than those limits allow: the fields as the parser completes them (their count,
their bytes, a second copy of a single-value header) and the raw bytes as they arrive, since
the parser hands a field over only once it is complete and grows an unfinished one by
concatenation. A refused head is answered with the error envelope and the connection closed.

It subclasses uvicorn's private ``HttpToolsProtocol``, so pyproject.toml holds uvicorn to the
series it is tested with, and ``tests/server/test_uvicorn_internals.py`` names every attribute
and callback of uvicorn's that this module relies on, failing loudly when one changes.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.contract.errors import GatewayError
from gateway.http.disconnect import HOOKS_EXTENSION, DisconnectHooks
from gateway.http.request_head import (
    MAX_HEAD_BYTES,
    MAX_HEADER_BYTES,
    MAX_HEADER_FIELDS,
    SINGLE_VALUE_HEADERS,
    head_too_long,
    refusal,
    repeated,
    too_many_bytes,
    too_many_fields,
)

# llhttp's own refusal of a second Content-Length, raised before the field reaches on_header.
_LLHTTP_DUPLICATE_LENGTH = "Duplicate Content-Length"


class _HeadRefusedError(Exception):
    """Raised from a parser callback to stop parsing a refused head at once."""


class DeadlineProtocol(HttpToolsProtocol):
    header_timeout_s = 10.0
    body_timeout_s = 300.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # One timer per connection, moved on lazily: a request re-arms the deadline three times,
        # and a timer of its own each time would cost more than the rest of this class.
        self._timer: asyncio.TimerHandle | None = None
        self._due: float | None = None  # when the connection is closed; None: no deadline
        self._hooks = DisconnectHooks()
        self._hooks_extension: dict[str, Any] = {"hooks": self._hooks}
        # The current head: open from its first byte until the parser completes it.
        self._head_open = False
        self._head_bytes = 0  # raw bytes of the reads after the one it began in (-1: none yet)
        self._field_bytes = 0  # names and values of its complete fields
        self._single_seen = 0  # the SINGLE_VALUE_HEADERS bits of the fields seen
        self._refused = False

    def _arm(self, seconds: float) -> None:
        due = self.loop.time() + seconds
        self._due = due
        timer = self._timer
        if timer is None or timer.when() > due:  # a timer due later would fire too late
            if timer is not None:
                timer.cancel()
            self._timer = self.loop.call_at(due, self._expire)

    def _disarm(self) -> None:
        self._due = None  # the timer, if any, stays and finds nothing to do

    def _expire(self) -> None:
        self._timer = None
        due = self._due
        if due is None:
            return
        if self.loop.time() < due:  # the deadline moved on since the timer was set
            self._timer = self.loop.call_at(due, self._expire)
            return
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)
        self._hooks.connection_lost()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        # Merged into whatever extensions uvicorn itself offers, never replacing them; a dict
        # of the request's own, since an app may write into its scope's extensions.
        scope: dict[str, Any] = cast(dict[str, Any], self.scope)
        extensions = scope.get("extensions")
        if extensions is None:
            scope["extensions"] = {HOOKS_EXTENSION: self._hooks_extension}
        else:
            extensions[HOOKS_EXTENSION] = self._hooks_extension
        self._arm(self.header_timeout_s)
        self._head_open = True
        self._head_bytes = -1
        self._field_bytes = 0
        self._single_seen = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        # uvicorn's own on_header (lower-case name, value without trailing whitespace, Expect
        # noted), written out here rather than called: one frame less for every field.
        name = name.lower()
        value = value.rstrip(b" \t")
        headers = self.headers
        if len(headers) >= MAX_HEADER_FIELDS:
            self._refuse_while_parsing(too_many_fields())
        size = self._field_bytes + len(name) + len(value)
        if size > MAX_HEADER_BYTES:
            self._refuse_while_parsing(too_many_bytes())
        self._field_bytes = size
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        headers.append((name, value))
        bit = SINGLE_VALUE_HEADERS.get(name)
        if bit is not None:
            # Kept above, so a twice-sent request id is not used. A chunked body's trailer
            # fields come here too, after the head: they may repeat a header's name.
            if self._single_seen & bit and self._head_open:
                self._refuse_while_parsing(repeated(name))
            self._single_seen |= bit

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_open:  # the head goes on past this read
            counted = self._head_bytes
            if counted < 0:
                # It began within this read, which may also hold the end of the request before:
                # that read is left uncounted (a read is at most a few hundred KiB).
                self._head_bytes = 0
                return
            counted += len(data)
            self._head_bytes = counted
            if counted > MAX_HEAD_BYTES:
                self._refuse(head_too_long())

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers every parser error here, from inside its except clause: a head this
        # protocol refused in a callback, or llhttp's own refusal of a second Content-Length,
        # gets the envelope; any other parser error keeps uvicorn's plain-text answer.
        if self._refused:
            return
        if str(sys.exc_info()[1]) == _LLHTTP_DUPLICATE_LENGTH:
            self._refuse(repeated(b"content-length"))
            return
        super().send_400_response(msg)

    def _refuse_while_parsing(self, error: GatewayError) -> None:
        if self._head_open:
            self._refuse(error)
        else:  # trailer fields past the limits: a response may be under way, so no answer
            self._refused = True
            self.transport.close()
        raise _HeadRefusedError  # stops the parser; uvicorn then calls send_400_response

    def _refuse(self, error: GatewayError) -> None:
        self._head_open = False
        self._refused = True
        transport = self.transport
        if not transport.is_closing():
            transport.write(refusal(error, self.headers, self.server_state.default_headers))
            transport.close()

    def on_headers_complete(self) -> None:
        self._head_open = False
        before = self.cycle
        super().on_headers_complete()
        self._arm(self.body_timeout_s)
        if self.cycle is not before and self.cycle is not None:  # a new request's cycle
            self.cycle.transport = cast(asyncio.Transport, _HeadHolder(self.transport, self.loop))

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Between requests uvicorn's own keep-alive timeout applies.
        self._disarm()


class _HeadHolder:
    """The transport as one response's cycle sees it: the first write (the status line and
    headers) is held back and leaves with the next one (the first body bytes), so a response
    costs one write syscall instead of two; on a VM a loopback write is tens of microseconds.
    A head that no body write follows within the same loop turn is sent at the end of it.
    """

    __slots__ = ("_fresh", "_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._fresh = True
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._fresh:
            self._fresh = False
            self._held = data
            self._loop.call_soon(self._flush)
            return
        held = self._held
        if held is None:
            self._transport.write(data)
        else:
            self._held = None
            self._transport.writelines((held, data))

    def _flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self._flush()
        self._transport.close()


def deadline_protocol(header_timeout_s: float, body_timeout_s: float) -> type[DeadlineProtocol]:
    """The protocol class with these deadlines (uvicorn takes a class, not an instance)."""
    return type(
        "ConfiguredDeadlineProtocol",
        (DeadlineProtocol,),
        {"header_timeout_s": header_timeout_s, "body_timeout_s": body_timeout_s},
    )
