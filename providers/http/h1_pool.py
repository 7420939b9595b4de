"""The keep-alive pool of the lean HTTP/1.1 client (``providers/http/h1.py``): at most
``max_connections`` connections to one origin.

It hands connections out most recently used first (its socket is warm), opens new ones up to the
cap, queues callers beyond it (each for at most the time its request may take), and closes
connections idle longer than the keep-alive window. A connection's slot is freed when its socket
closes, whichever side closed it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import cast

from providers.http.framing import Origin
from providers.http.h1 import Connection
from providers.http.proxy import open_tunnel

KEEPALIVE_S = 15.0


class H1Pool:
    """Keep-alive connections to one origin, at most ``max_connections`` of them at once."""

    def __init__(
        self,
        origin: Origin,
        *,
        max_connections: int,
        connect_timeout: float,
        keepalive_s: float = KEEPALIVE_S,
    ) -> None:
        self.origin = origin
        self.loop = asyncio.get_running_loop()
        self._max = max_connections
        self._connect_timeout = connect_timeout
        self._keepalive_s = keepalive_s
        self._idle: list[Connection] = []  # most recently used last
        self._open = 0  # connections open or being opened, idle ones included
        self._waiters: deque[asyncio.Future[Connection | None]] = deque()
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    async def acquire(self, wait_s: float, deadline: float | None = None) -> Connection:
        """A connection ready for one exchange; waits at most ``wait_s`` for a free slot, and
        connecting a new one ends by ``deadline`` (loop time) if that is before the connect
        timeout."""
        if self._closed:
            raise ConnectionResetError("the client is closed")
        idle = self._idle
        while idle:
            conn = idle.pop()
            transport = conn.transport
            if conn.closed or transport is None or transport.is_closing():
                continue  # its connection_lost frees the slot
            if self.loop.time() - conn.idle_since <= self._keepalive_s:
                conn.busy = True
                return conn
            conn.close()
        if self._open >= self._max:
            handed = await self._wait_for_slot(wait_s)
            if handed is not None:
                return handed
        else:
            self._open += 1
        return await self._connect(deadline)

    def release(self, conn: Connection) -> None:
        """Give ``conn`` back after its exchange: kept for reuse if it can be, else closed."""
        conn.busy = False
        if not conn.reusable or self._closed:
            conn.close()  # connection_lost frees its slot
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                conn.busy = True
                waiter.set_result(conn)
                return
        conn.idle_since = self.loop.time()
        self._idle.append(conn)
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(self._keepalive_s, self._sweep)

    def lost(self, conn: Connection) -> None:
        """``conn``'s socket closed (by either side): its slot goes to a waiter, if any."""
        if not conn.busy and conn in self._idle:
            self._idle.remove(conn)
        self._open -= 1
        self._pass_slot()

    async def close(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in self._idle:
            conn.close()
        self._idle.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectionResetError("the client is closed"))
        await asyncio.sleep(0)  # let the transports run connection_lost

    @property
    def open_connections(self) -> int:
        return self._open

    async def _connect(self, deadline: float | None) -> Connection:
        """A new connection in a slot already counted in ``_open``."""
        conn = Connection(self.loop, self.lost)
        conn.busy = True
        origin = self.origin
        connected_by = self.loop.time() + self._connect_timeout
        if deadline is not None and deadline < connected_by:
            connected_by = deadline
        try:
            async with asyncio.timeout_at(connected_by):
                if origin.proxy is not None and origin.tls is not None:
                    # A CONNECT tunnel, then TLS to the upstream itself through it.
                    raw = await open_tunnel(self.loop, origin.proxy, origin.host, origin.port)
                    try:
                        secured = await self.loop.start_tls(
                            cast(asyncio.WriteTransport, raw),
                            conn,
                            origin.tls,
                            server_hostname=origin.host,
                        )
                    except BaseException:
                        raw.close()
                        raise
                    if secured is None:
                        raise ConnectionResetError("the tunnel closed during the TLS handshake")
                    conn.connection_made(secured)
                else:
                    proxy = origin.proxy  # plain http through a proxy: connect to the proxy
                    await self.loop.create_connection(
                        lambda: conn,
                        origin.host if proxy is None else proxy.host,
                        origin.port if proxy is None else proxy.port,
                        ssl=origin.tls,
                        server_hostname=origin.host if origin.tls else None,
                    )
        except BaseException:
            if conn.transport is None:  # never connected; otherwise connection_lost frees it
                self._open -= 1
                self._pass_slot()
            else:
                conn.close()
            raise
        return conn

    async def _wait_for_slot(self, wait_s: float) -> Connection | None:
        """A connection handed over by ``release``, or None: a slot freed to open one in."""
        waiter: asyncio.Future[Connection | None] = self.loop.create_future()
        self._waiters.append(waiter)
        timer = self.loop.call_later(wait_s, _expire, waiter)
        try:
            return await waiter
        except BaseException:
            # Cancelled after being handed something: give it on, or it would leak.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                handed = waiter.result()
                if handed is not None:
                    self.release(handed)
                else:
                    self._open -= 1
                    self._pass_slot()
            raise
        finally:
            timer.cancel()
            if not waiter.done():
                waiter.cancel()

    def _pass_slot(self) -> None:
        while self._waiters and self._open < self._max:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._open += 1
                waiter.set_result(None)
                return

    def _sweep(self) -> None:
        self._sweeper = None
        cutoff = self.loop.time() - self._keepalive_s
        for conn in [c for c in self._idle if c.idle_since < cutoff]:
            conn.close()
        if self._idle:
            self._sweeper = self.loop.call_later(self._keepalive_s, self._sweep)


def _expire(waiter: asyncio.Future[Connection | None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("no free connection to the provider in time"))
