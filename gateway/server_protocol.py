"""uvicorn's httptools protocol with deadlines for a request's head and body, and a direct line
to tell a request that its client left (``gateway/disconnect.py``).

uvicorn times a connection out only while it sits idle between requests: a client that opens a
connection and never finishes its headers (slowloris), or sends a body a byte at a time, holds a
socket and a file descriptor for ever. This protocol closes such a connection once the head has
taken longer than ``header_timeout_s`` (counted from the connection's first byte, or from the
connection itself for a client that sends nothing) or the body longer than ``body_timeout_s``.
The client gets no answer: it sent no request worth one.

It subclasses uvicorn's private ``HttpToolsProtocol``, so pyproject.toml holds uvicorn to the
series it is tested with, and ``tests/server/test_uvicorn_internals.py`` names every attribute
and callback of uvicorn's that this module relies on, failing loudly when one changes.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.disconnect import HOOKS_EXTENSION, DisconnectHooks


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

    def on_headers_complete(self) -> None:
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
