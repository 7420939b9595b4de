"""A lean, pipelined Redis client for the calls every request makes (rate limits, cooldowns).

redis-py spends some 400k instructions on each call (connection-pool checkout, per-argument
encoding, a timer per call, its parser, the release), more than the whole rest of a request;
this client spends a small fraction of that. It keeps ONE connection per gateway process and
writes every command the moment it is made, so the calls of concurrent requests share round
trips (Redis answers in order; replies are matched to callers first in, first out).
``hiredis`` packs the commands and parses the replies in C.

Failure: any call that has no reply within ``timeout_s`` (a single timer watches the oldest
pending call), a lost connection or a reply that cannot be parsed fails every pending call with
``ConnectionError`` or ``TimeoutError`` and drops the connection (its replies can no longer be
matched); the next call reconnects. ``RedisState`` turns these into its fail-fast policy.
A caller that is cancelled while waiting leaves its slot in the queue, so the replies still
line up. Scripts run by sha (``EVALSHA``), falling back to ``EVAL`` once when Redis has not
seen them yet.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import ssl
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import hiredis

Arg = str | bytes | int | float


def _pack(args: tuple[Arg, ...]) -> bytes:
    # hiredis' stub types its argument as a 1-tuple; it takes any number of arguments.
    packed: bytes = hiredis.pack_command(args)  # type: ignore[arg-type]
    return packed


class RespError(Exception):
    """Redis answered with an error reply (the store is up; the command was wrong)."""


class RespTarget:
    """Where to connect and how to log in, read from a ``redis://``, ``rediss://`` or
    ``unix://`` URL as redis-py reads it."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"unsupported Redis URL scheme {parts.scheme!r}")
        self.unix_path = parts.path if parts.scheme == "unix" else None
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 6379
        self.tls = parts.scheme == "rediss"
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        query = dict(pair.split("=", 1) for pair in parts.query.split("&") if "=" in pair)
        path_db = parts.path.lstrip("/") if parts.scheme != "unix" else ""
        self.db = int(query.get("db") or path_db or 0)

    def login(self) -> list[tuple[Arg, ...]]:
        """The commands that open a session: AUTH and SELECT, when the URL asks for them."""
        commands: list[tuple[Arg, ...]] = []
        if self.password is not None:
            if self.username is not None:
                commands.append(("AUTH", self.username, self.password))
            else:
                commands.append(("AUTH", self.password))
        if self.db:
            commands.append(("SELECT", self.db))
        return commands


class _Connection(asyncio.Protocol):
    """One socket: writes packed commands, feeds replies to the waiting futures in order."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._reader = hiredis.Reader()
        self._pending: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._watchdog: asyncio.TimerHandle | None = None
        self.broken: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are not subclasses of asyncio.Transport).
        self._transport = cast(asyncio.Transport, transport)

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        if self.broken is not None:
            raise ConnectionError(f"the Redis connection is closed: {self.broken}")
        assert self._transport is not None
        future: asyncio.Future[Any] = self._loop.create_future()
        deadline = self._loop.time() + self._timeout_s
        self._pending.append((future, deadline))
        self._transport.write(packed)
        if self._watchdog is None:
            self._watchdog = self._loop.call_at(deadline, self._check_deadline)
        return future

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        try:
            reader.feed(data)
            reply = reader.gets()
            while reply is not False:
                future, _ = self._pending.popleft()
                if not future.done():  # a cancelled caller's reply is dropped in its turn
                    if isinstance(reply, hiredis.ReplyError):
                        future.set_exception(RespError(str(reply)))
                    else:
                        future.set_result(reply)
                reply = reader.gets()
        except (hiredis.ProtocolError, IndexError) as error:
            self._fail(ConnectionError(f"unreadable reply from Redis: {error}"))

    def _check_deadline(self) -> None:
        self._watchdog = None
        if not self._pending:
            return
        _, deadline = self._pending[0]
        if self._loop.time() >= deadline:
            self._fail(TimeoutError(f"no reply from Redis within {self._timeout_s:g} s"))
        else:
            self._watchdog = self._loop.call_at(deadline, self._check_deadline)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"the Redis connection was lost: {exc or 'closed'}"))

    def _fail(self, error: BaseException) -> None:
        if self.broken is None:
            self.broken = error
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        while self._pending:
            future, _ = self._pending.popleft()
            if not future.done():
                future.set_exception(error)
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        self._fail(ConnectionError("the Redis client was closed"))


class RespScript:
    """A Lua script known by its sha."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


class RespClient:
    """``call`` sends one command and returns its reply; ``script`` runs a ``RespScript``."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self._target = RespTarget(url)
        self._timeout_s = timeout_s
        self._connection: _Connection | None = None
        self._connecting: asyncio.Task[_Connection] | None = None

    async def call(self, *args: Arg) -> Any:
        connection = self._connection
        if connection is None or connection.broken is not None:
            connection = await self._connect()
        return await connection.send(_pack(args))

    async def script(self, script: RespScript, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        try:
            return await self.call("EVALSHA", script.sha, len(keys), *keys, *args)
        except RespError as error:
            if not str(error).startswith("NOSCRIPT"):
                raise
        # Redis restarted or was flushed: EVAL runs the script and caches it again.
        return await self.call("EVAL", script.source, len(keys), *keys, *args)

    async def _connect(self) -> _Connection:
        # Concurrent callers wait on one connection attempt rather than each opening a socket.
        if self._connecting is None:
            self._connecting = asyncio.get_running_loop().create_task(self._open())
        try:
            return await asyncio.shield(self._connecting)
        finally:
            if self._connecting is not None and self._connecting.done():
                self._connecting = None

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        target = self._target

        def protocol() -> _Connection:
            return _Connection(self._timeout_s)

        async with asyncio.timeout(self._timeout_s):
            if target.unix_path is not None:
                _, connection = await loop.create_unix_connection(protocol, target.unix_path)
            else:
                context = ssl.create_default_context() if target.tls else None
                _, connection = await loop.create_connection(
                    protocol, target.host, target.port, ssl=context
                )
            try:
                replies = [connection.send(_pack(c)) for c in target.login()]
                for reply in replies:
                    await reply
            except BaseException:
                connection.close()
                raise
        self._connection = connection
        return connection

    async def close(self) -> None:
        connecting, self._connecting = self._connecting, None
        if connecting is not None:
            connecting.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await connecting
        if self._connection is not None:
            self._connection.close()
            self._connection = None
