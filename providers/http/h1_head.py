"""The slow paths of reading a response head on the chat path's client: a head split across
reads, one over the size cap, and one with obsolete line folds.

A head that arrives whole in one read never comes here (``providers.http.h1.Connection`` feeds
it to the parser directly). These are ``Connection``'s methods, kept in their own module as a
base class: the attributes they use are ``Connection``'s own, declared here for the type
checker.
"""

from __future__ import annotations

import re

import httptools

from providers.base import UpstreamError
from providers.http.framing import ProtocolError

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


class HeadSlowPaths:
    """Head handling beyond the one-read case; mixed into ``Connection``."""

    # Declared here, not in Connection: a base class's methods must find their slots.
    __slots__ = (
        "_error",
        "_head_done",
        "_head_parts",
        "_head_size",
        "_informational",
        "_parser",
        "_raw_headers",
        "_unfold_carry",
    )

    _parser: httptools.HttpResponseParser
    _raw_headers: list[tuple[bytes, bytes]]
    _informational: bool
    _head_done: bool
    _head_parts: list[bytes] | None
    _head_size: int
    _unfold_carry: bytes | None
    _error: BaseException | None

    def fail(self, exc: BaseException) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

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
