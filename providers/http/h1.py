"""A lean pooled HTTP/1.1 client for the chat hot path: one POST out, one bounded answer back.

aiohttp's general ``ClientSession`` cost about a third of the gateway's CPU per proxied chat
request: a URL object, header multidicts, a timer, a payload writer and a stream reader for each
request. The chat path needs much less: a POST with a pre-encoded head to one origin, a response
parsed by httptools (the C parser uvicorn already runs), keep-alive reuse, backpressure on
streams, and deadlines. This module is exactly that and no more; multipart uploads and file
downloads from arbitrary URLs stay on aiohttp (``providers/http/upstream.py``).

This module owns one connection and its exchange (``Connection``);
``providers/http/h1_pool.py`` owns the pool that hands connections out.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import cast

import httptools

from providers.base import UpstreamError
from providers.http.framing import ProtocolError
from providers.http.h1_head import MAX_HEAD_BYTES, MAX_HEAD_FIELDS, HeadSlowPaths

# A stream's unread bytes above this pause reading from the provider until the consumer catches
# up, so a client that stops reading holds at most this much (plus one read) in memory.
STREAM_HIGH_WATER = 256 * 1024
_UNBOUNDED = sys.maxsize


class Connection(HeadSlowPaths, asyncio.Protocol):
    """One keep-alive connection to the origin, and the state of its current exchange."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_complete",
        "_deadline",
        "_framed",
        "_keep_alive",
        "_limit",
        "_loop",
        "_on_lost",
        "_paused",
        "_read_timeout",
        "_streaming",
        "_timer",
        "_waiter",
        "busy",
        "closed",
        "headers",
        "idle_since",
        "last_data",
        "status",
        "transport",
    )

    def __init__(
        self, loop: asyncio.AbstractEventLoop, on_lost: Callable[[Connection], None]
    ) -> None:
        # Told when the connection goes away (the pool forgets it): a callback, not the pool,
        # so that this module does not depend on the pool's.
        self._on_lost = on_lost
        self._loop = loop
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.busy = False
        self.idle_since = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._begin(stream=False, limit=_UNBOUNDED, read_timeout=0.0, deadline=None)

    def _begin(
        self, *, stream: bool, limit: int, read_timeout: float, deadline: float | None
    ) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._head_done = False
        # The head's bytes so far (raw), once it spans reads; their count, for the cap (after the
        # head, the trailers' size); and, once a fold was found, the trailing whitespace held
        # back until the next read.
        self._head_parts: list[bytes] | None = None
        self._head_size = 0
        self._unfold_carry: bytes | None = None
        self._complete = False
        self._keep_alive = False
        self._framed = False
        self._informational = False
        self._paused = False
        self._error: BaseException | None = None
        # Read piece by piece (each arrival wakes the reader; reading pauses past the high
        # water mark) rather than whole (the reader wakes once, at the end).
        self._streaming = stream
        self._limit = limit
        self._read_timeout = read_timeout
        self._deadline = deadline

    # --- the exchange, as the caller drives it ---------------------------------------------

    def send(
        self,
        request: bytes,
        *,
        stream: bool,
        limit: int,
        read_timeout: float,
        deadline: float | None = None,
    ) -> None:
        """Write ``request`` (head and body) and start waiting for the answer.

        ``limit`` bounds the body bytes held at once (a sync answer: all of it); each read must
        arrive within ``read_timeout`` and, for a sync answer, all of it before ``deadline``.
        A stream's deadline stops at its head: past that, its reader sets its own.
        """
        if self.closed or self.transport is None:
            raise ConnectionResetError("the connection closed while idle")
        self._begin(stream=stream, limit=limit, read_timeout=read_timeout, deadline=deadline)
        self.busy = True
        self.last_data = self._loop.time()
        self._timer = self._loop.call_at(self._due(), self._on_timer)
        self.transport.write(request)

    async def read_head(self) -> tuple[int, dict[str, str]]:
        """The final (non-1xx) status and headers, names lower-cased; returns once the first
        body bytes (or the end of the answer) have arrived too."""
        while not self._head_done:
            if self._error is not None:
                raise self._error
            await self._wait()
        return self.status, self.headers

    async def read_whole(self) -> bytes:
        """The rest of the body, bounded by ``limit``; then the exchange's deadline stops."""
        self._streaming = False
        self._resume()
        while not self._complete:
            if self._error is not None:
                raise self._error
            await self._wait()
        self._cancel_timer()
        return self._take()

    async def read_some(self) -> bytes:
        """The body bytes that arrived since the last call (waiting for some); ``b""`` at the
        end. Bytes that arrived before a failure are returned before the failure is raised."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._complete:
                return b""
            await self._wait()
        self._resume()
        return self._take()

    def stop_deadline(self) -> None:
        """Stop this exchange's read deadline (a stream's reader keeps its own from here)."""
        self._cancel_timer()

    def fail(self, exc: BaseException) -> None:
        """End the exchange with ``exc``: a waiting read raises it (used by readers' deadlines)."""
        if self._error is None and not self._complete:
            self._error = exc
        self._cancel_timer()
        self._wake()

    @property
    def reusable(self) -> bool:
        """Whether the exchange ended cleanly and the provider keeps the connection open."""
        return self._complete and self._keep_alive and not self.closed and self._error is None

    def close(self) -> None:
        self._cancel_timer()
        if self.transport is not None and not self.closed:
            self.transport.close()

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self.busy:  # bytes nobody asked for: the connection cannot be trusted again
            self.close()
            return
        self.last_data = self._loop.time()
        if not self._head_done and (self._head_size or len(data) > MAX_HEAD_BYTES):
            self._head_received(data)  # a head split across reads, or a first read past the cap
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._head_refused(exc, data)
            return
        if not self._head_done:  # the head continues in the next read: keep what came
            self._head_parts = [data]
            self._head_size = len(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        # The parser holds this protocol's callbacks: dropping it breaks the reference cycle, so
        # refcounting frees a closed connection at once instead of the garbage collector.
        del self._parser
        if self.busy and not self._complete and self._error is None:
            if self._head_done and not self._framed and exc is None:
                self._complete = True  # a body with neither length nor chunks ends at a clean EOF
            else:
                # A reset (even of a body that ends at EOF) cuts the body short: never an answer.
                self._error = exc or ConnectionResetError("the provider closed the connection")
        self._cancel_timer()
        self._wake()
        self._on_lost(self)

    def pause_writing(self) -> None:
        pass  # request bodies are written whole; the transport buffers them

    def resume_writing(self) -> None:
        pass

    # --- httptools callbacks ---------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._head_done:  # a trailer of a chunked body: read, bounded and dropped
            self._head_size += len(name) + len(value)
            if self._head_size > MAX_HEAD_BYTES:
                self._head_too_large()
            return
        self._raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        if len(self._raw_headers) > MAX_HEAD_FIELDS:
            self._head_too_large()
            return
        status = self._parser.get_status_code()
        if status < 200:  # an interim answer (100 Continue, 103 Early Hints): the real one follows
            self._raw_headers = []
            self._informational = True
            return
        headers: dict[str, str] = {}
        for raw_name, raw_value in self._raw_headers:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self.status = status
        self.headers = headers
        self._head_done = True
        self._head_size = 0  # from here it counts the trailers
        self._framed = (
            "content-length" in headers or "chunked" in headers.get("transfer-encoding", "").lower()
        )
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", ""):
            # Requests say ``accept-encoding: identity``; a coded body is a provider fault.
            self.fail(ProtocolError(f"unrequested content-encoding {encoding!r}"))
            self.close()
        # No wake-up for the head alone: every caller wants the body that follows it (a
        # stream's first event, an error's message), and a wake-up costs a task step.

    def on_body(self, body: bytes) -> None:
        if self._error is not None:
            return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > self._limit:
            self.fail(UpstreamError("server", "The provider's response was too large."))
            self.close()
            return
        if self._streaming:
            if self._buffered > STREAM_HIGH_WATER and not self._paused and self.transport:
                self._paused = True
                self.transport.pause_reading()
            self._wake()

    def on_message_complete(self) -> None:
        if self._error is not None:
            return  # failed mid-message (too large, say): never a clean end
        if self._informational:
            self._informational = False
            return
        self._complete = True
        self._keep_alive = self._parser.should_keep_alive()
        self._wake()

    # --- internals -------------------------------------------------------------------------

    def _take(self) -> bytes:
        """The body bytes held, handed over and forgotten."""
        chunks = self._chunks
        self._chunks = []
        self._buffered = 0
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _wait(self) -> None:
        waiter = self._loop.create_future()
        self._waiter = waiter
        try:
            await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _resume(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    def _due(self) -> float:
        due = self.last_data + self._read_timeout
        return due if self._deadline is None or due < self._deadline else self._deadline

    def _on_timer(self) -> None:
        # One timer per exchange, moved on lazily: data arriving costs a clock read, not a timer.
        self._timer = None
        if self._complete or self._error is not None:
            return
        due = self._due()
        if self._loop.time() >= due:
            self.fail(TimeoutError("the provider did not answer in time"))
            return
        self._timer = self._loop.call_at(due, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
