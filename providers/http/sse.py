"""Reading a provider's server-sent event stream: ``data:`` payloads, batched by network read,
each line bounded in size and in the time it may take to arrive."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

from providers.base import UpstreamError
from providers.http.h1 import Connection
from providers.http.transport import transport_error


async def sse_batches(
    conn: Connection, line_timeout: float, max_line_bytes: int, first_by: float | None = None
) -> AsyncIterator[list[bytes]]:
    """The ``data:`` payloads of an event stream, batched by network read.

    Events that arrive in one read are yielded together, so the gateway forwards them in one
    write instead of one write per event (the cost of a stream is mostly per write). A line
    longer than ``max_line_bytes`` is a broken stream, not a reason to buffer; the events before
    it still go out. Each line must arrive whole within ``line_timeout``: a read timeout that
    restarted with every byte would let a provider dripping bytes hold the stream (and its
    client) forever. The first batch must also arrive by ``first_by`` (loop time), the request's
    deadline: keep-alive comments do not hold a client past it.
    """
    deadline = _LineDeadline(conn, line_timeout, first_by)
    pending = b""
    try:
        deadline.start()
        while data := await conn.read_some():
            size = len(pending) + len(data)
            lines = (pending + data).split(b"\n") if pending else data.split(b"\n")
            pending = lines.pop()
            # Only a read that takes the unfinished text past the limit can hold a long line.
            if size > max_line_bytes and max(map(len, [pending, *lines])) > max_line_bytes:
                deadline.stop()
                intact = itertools.takewhile(lambda line: len(line) <= max_line_bytes, lines)
                batch = [line[5:].strip() for line in intact if line.startswith(b"data:")]
                if batch:
                    yield batch  # the events before the broken one still go out
                raise UpstreamError("server", "The provider sent an oversized stream event.")
            if not lines:
                continue  # no line finished: the deadline keeps running
            deadline.stop()
            batch = [line[5:].strip() for line in lines if line.startswith(b"data:")]
            if batch:
                deadline.until = None  # the stream has started: only the line timeout is left
                yield batch
            deadline.start()
        if pending.startswith(b"data:"):
            yield [pending[5:].strip()]
    except UpstreamError:
        raise
    except Exception as exc:
        raise transport_error(exc) from exc
    finally:
        deadline.cancel()


class _LineDeadline:
    """Fails a stream read that has waited ``seconds`` without receiving a whole line.

    The clock runs only while the reader waits on the provider, never while the consumer holds
    a batch (a slow client is not the provider's fault). One timer per stream, re-armed lazily
    when it fires, so a batch costs a clock read rather than a timer of its own.
    """

    __slots__ = ("_conn", "_loop", "_seconds", "_since", "_timer", "until")

    def __init__(self, conn: Connection, seconds: float, until: float | None = None) -> None:
        self._conn = conn
        self._loop = asyncio.get_running_loop()
        self._seconds = seconds
        self._since: float | None = None  # when the current wait began; None: not waiting
        self._timer: asyncio.TimerHandle | None = None
        # A time no wait may pass (the request's deadline, until the first batch); only ever
        # cleared, so a timer armed for it never fires later than needed.
        self.until = until

    def _due(self, since: float) -> float:
        due = since + self._seconds
        until = self.until
        return due if until is None or due < until else until

    def start(self) -> None:
        self._since = self._loop.time()
        if self._timer is None:
            self._timer = self._loop.call_at(self._due(self._since), self._expire)

    def stop(self) -> None:
        self._since = None

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if self._since is None:
            return  # the consumer holds a batch; the next wait arms the timer again
        due = self._due(self._since)
        if self._loop.time() < due:
            self._timer = self._loop.call_at(due, self._expire)
            return
        # Wakes the pending read with the error.
        self._conn.fail(TimeoutError("no whole line within the read timeout"))
