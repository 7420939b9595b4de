"""A lean pooled HTTP/1.1 client for the chat hot path: one POST out, one bounded answer back.

aiohttp's general ``ClientSession`` cost about a third of the gateway's CPU per proxied chat
request: a URL object, header multidicts, a timer, a payload writer and a stream reader for each
request. The chat path needs much less: a POST with a pre-encoded head to one origin, a response
parsed by httptools (the C parser uvicorn already runs), keep-alive reuse, backpressure on
streams, and deadlines. This module is exactly that and no more; multipart uploads and file
downloads from arbitrary URLs stay on aiohttp (``providers/http.py``).

This module owns one connection and its exchange (``Connection``); ``providers/h1_pool.py`` owns
the pool that hands connections out.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit

import httptools

from providers.base import UpstreamError

if TYPE_CHECKING:
    from providers.h1_pool import H1Pool

# A stream's unread bytes above this pause reading from the provider until the consumer catches
# up, so a client that stops reading holds at most this much (plus one read) in memory.
STREAM_HIGH_WATER = 256 * 1024
_UNBOUNDED = sys.maxsize
# A response head (interim heads included) above this many bytes, or with more fields than this,
# is refused while it arrives: the parser would otherwise hold any amount of it in memory. The
# trailer section of a chunked body has a budget of the same size.
MAX_HEAD_BYTES = 64 * 1024
MAX_HEAD_FIELDS = 256
# RFC 9112 section 5.2: an obsolete line fold (a line starting with SP or HTAB continues the
# previous field value) is replaced by one space. httptools refuses folds, so a head that has
# them is parsed again unfolded; heads without them never pay for this.
_FOLD = re.compile(rb"[ \t]*\r\n[ \t]+")
_FOLD_START = re.compile(rb"\r\n[ \t]")
_HEAD_END = b"\r\n\r\n"


class ProtocolError(Exception):
    """The provider's bytes are not an HTTP/1.1 response this client can read."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a pool connects, and the bytes every request to it starts with."""

    host: str
    port: int
    tls: ssl.SSLContext | None
    base_path: str  # the base URL's path, without a trailing slash: prefixed to request paths
    host_header: bytes

    @classmethod
    def parse(cls, base_url: str, ca_file: str | None = None) -> Origin:
        """The origin of ``base_url``; for https, trusting the system's CAs plus ``ca_file``."""
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        tls = tls_context(ca_file) if parts.scheme == "https" else None
        port = parts.port or (443 if tls else 80)
        netloc = parts.netloc.rpartition("@")[2]  # never send userinfo in Host
        return cls(
            host=parts.hostname,
            port=port,
            tls=tls,
            base_path=parts.path.rstrip("/"),
            host_header=netloc.encode("idna" if not netloc.isascii() else "ascii"),
        )


def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """Certificate-verifying TLS: the system's CAs, plus those in ``ca_file`` (a PEM bundle, for
    upstreams behind a private CA)."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def encode_headers(headers: Mapping[str, str]) -> bytes:
    """``name: value\\r\\n`` lines; a CR, LF or NUL in a name or value (header injection) is
    refused rather than sent."""
    lines = []
    for name, value in headers.items():
        line = f"{name}: {value}\r\n"
        if line.count("\r") != 1 or "\n" in line[:-1] or "\0" in line:
            raise ValueError(f"header {name!r} holds a line break")
        lines.append(line.encode("latin-1"))
    return b"".join(lines)


class Connection(asyncio.Protocol):
    """One keep-alive connection to the origin, and the state of its current exchange."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_complete",
        "_deadline",
        "_error",
        "_framed",
        "_head_done",
        "_head_parts",
        "_head_size",
        "_informational",
        "_keep_alive",
        "_limit",
        "_loop",
        "_parser",
        "_paused",
        "_pool",
        "_raw_headers",
        "_read_timeout",
        "_streaming",
        "_timer",
        "_unfold_carry",
        "_waiter",
        "busy",
        "closed",
        "headers",
        "idle_since",
        "last_data",
        "status",
        "transport",
    )

    def __init__(self, pool: H1Pool) -> None:
        self._pool = pool
        self._loop = pool.loop
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
        self._pool.lost(self)

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

    # --- the head's slow paths: split across reads, too large, folded ------------------------

    def _head_received(self, data: bytes) -> None:
        """Feed ``data`` that arrived before the final head is whole and is not its first read
        (or is past the cap): counted against the cap, and kept (until a fold was found) in case
        the head must be parsed again unfolded."""
        room = MAX_HEAD_BYTES - self._head_size
        part = data if len(data) <= room else data[:room]
        self._head_size += len(part)
        try:
            if self._unfold_carry is not None:
                self._feed_unfolding(part)
            else:
                if self._head_parts is None:
                    self._head_parts = []
                self._head_parts.append(part)
                self._parser.feed_data(part)
        except httptools.HttpParserError as exc:
            self._head_refused(exc, b"".join(self._head_parts or ()))
        if part is data or self._error is not None:
            return
        if not self._head_done:
            self._head_too_large()
            return
        try:  # the head ended within the cap: what follows it is body
            self._parser.feed_data(data[room:])
        except httptools.HttpParserError as exc:
            self._malformed(exc)

    def _head_refused(self, exc: httptools.HttpParserError, raw: bytes) -> None:
        """The parser refused the answer. A head (``raw``: all of it so far) with obsolete line
        folds is parsed again unfolded, by a new parser; anything else is malformed."""
        if self._head_done or self._unfold_carry is not None or not _FOLD_START.search(raw):
            self._malformed(exc)
            return
        self._parser = httptools.HttpResponseParser(self)
        self._raw_headers = []
        self._informational = False
        self._head_parts = None
        self._head_size = len(raw)
        self._unfold_carry = b""
        try:
            self._feed_unfolding(raw)
        except httptools.HttpParserError as again:
            self._malformed(again)

    def _feed_unfolding(self, data: bytes) -> None:
        """Feed head bytes with their folds replaced by one space, head by head (interim heads
        first): the body after the final head is fed as it is. A trailing run of whitespace and
        line ends may begin a fold or the head's end, so it waits for the next read."""
        buffer = self._unfold_carry + data if self._unfold_carry else data
        while (end := buffer.find(_HEAD_END)) >= 0:
            end += len(_HEAD_END)
            self._parser.feed_data(_FOLD.sub(b" ", buffer[:end]))
            buffer = buffer[end:]
            if self._head_done or self._error is not None:
                self._unfold_carry = None
                if buffer and self._error is None:
                    self._parser.feed_data(buffer)
                return
        keep = len(buffer.rstrip(b" \t\r\n"))
        self._parser.feed_data(_FOLD.sub(b" ", buffer[:keep]))
        self._unfold_carry = buffer[keep:]

    def _head_too_large(self) -> None:
        self.fail(UpstreamError("server", "The provider's response head was too large."))
        self.close()

    def _malformed(self, exc: httptools.HttpParserError) -> None:
        self.fail(ProtocolError(f"malformed HTTP response: {exc}"))
        self.close()

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
