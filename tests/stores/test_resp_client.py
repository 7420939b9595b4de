"""The lean pipelined Redis client, on asyncio's loop and on uvloop (the server's).

Against the session's real redis-server: concurrent calls share one connection and each gets
its own reply; a cancelled caller does not shift the replies of the others; scripts fall back
to EVAL after a ``SCRIPT FLUSH``; error replies are ``RespError``. Against a scripted RESP
server on loopback: the login the URL asks for, a server that never answers (every pending
call times out, once), a dropped connection and garbage (``ConnectionError``, then the next
call reconnects).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
import uvloop

from gateway.stores.resp import RespClient, RespError, RespScript, RespTarget

LOOPS: dict[str, Callable[[Coroutine[Any, Any, None]], None]] = {
    "asyncio": asyncio.run,
    "uvloop": uvloop.run,
}


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, None]], None]:
    return LOOPS[request.param]


def test_concurrent_calls_share_one_connection_and_get_their_own_replies(
    run: Callable[[Coroutine[Any, Any, None]], None], redis_url: str
) -> None:
    async def scenario() -> None:
        client = RespClient(redis_url, 2.0)
        try:
            keys = [f"resp-test:{n}" for n in range(200)]
            await asyncio.gather(*(client.call("SET", key, key.upper()) for key in keys))
            values = await asyncio.gather(*(client.call("GET", key) for key in keys))
            assert values == [key.upper().encode() for key in keys]
            clients = await client.call("CLIENT", "LIST")
            own = [line for line in clients.split(b"\n") if b"cmd=client" in line]
            assert len(own) == 1  # every call went through the one connection
            await client.call("DEL", *keys)
        finally:
            await client.close()

    run(scenario())


def test_a_cancelled_caller_does_not_shift_the_other_replies(
    run: Callable[[Coroutine[Any, Any, None]], None], redis_url: str
) -> None:
    async def scenario() -> None:
        client = RespClient(redis_url, 2.0)
        try:
            await client.call("SET", "resp-test:slow", "late")
            blocked = asyncio.ensure_future(client.call("BLPOP", "resp-test:empty-list", 0.3))
            after = asyncio.ensure_future(client.call("GET", "resp-test:slow"))
            await asyncio.sleep(0)  # both are written, in this order
            blocked.cancel()
            assert await after == b"late"  # the BLPOP's nil reply went to nobody
            assert await client.call("ECHO", "next") == b"next"
        finally:
            await client.call("DEL", "resp-test:slow")
            await client.close()

    run(scenario())


def test_scripts_run_by_sha_and_reload_after_a_flush(
    run: Callable[[Coroutine[Any, Any, None]], None], redis_url: str
) -> None:
    async def scenario() -> None:
        client = RespClient(redis_url, 2.0)
        script = RespScript("return {KEYS[1], ARGV[1], tonumber(ARGV[2]) * 2}")
        try:
            assert await client.script(script, ["k"], ["a", 21]) == [b"k", b"a", 42]
            await client.call("SCRIPT", "FLUSH")
            assert await client.script(script, ["k2"], ["b", 1.5]) == [b"k2", b"b", 3]
            assert await client.call("SCRIPT", "EXISTS", script.sha) == [1]
            with pytest.raises(RespError, match=r"^ERR wrong number"):
                await client.call("INCR", "resp-test:not-a-number-", "extra")
        finally:
            await client.close()

    run(scenario())


class ScriptedServer:
    """A loopback TCP server that records what it reads and answers the n-th command it has
    read (counted over all connections, from 1) with ``answer(n)``: bytes, or None to hang up.
    (The tests' arguments hold no ``*``, so each ``*`` starts a command.)"""

    def __init__(self, answer: Callable[[int], bytes | None]) -> None:
        self.answer = answer
        self.received = b""
        self.commands = 0
        self.connections = 0
        self._server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                self.received += data
                for _ in range(data.count(b"*")):
                    self.commands += 1
                    reply = self.answer(self.commands)
                    if reply is None:
                        writer.close()
                        return
                    writer.write(reply)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        try:
            yield f"redis://user:p%40ss@127.0.0.1:{port}/3"
        finally:
            self._server.close()


def test_the_login_follows_the_url(run: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    target = RespTarget("redis://user:p%40ss@cache.internal:6380/3")
    assert (target.host, target.port, target.db, target.tls) == ("cache.internal", 6380, 3, False)
    assert target.login() == [("AUTH", "user", "p@ss"), ("SELECT", 3)]
    assert RespTarget("rediss://:secret@h").login() == [("AUTH", "secret")]
    assert RespTarget("unix:///run/redis.sock?db=2").unix_path == "/run/redis.sock"
    with pytest.raises(ValueError, match="scheme"):
        RespTarget("http://h")

    async def scenario() -> None:
        server = ScriptedServer(lambda n: b"+OK\r\n")
        async with server.running() as url:
            client = RespClient(url, 1.0)
            assert await client.call("PING") == b"OK"
            await client.close()
        assert server.received.startswith(b"*3\r\n$4\r\nAUTH\r\n$4\r\nuser\r\n$4\r\np@ss\r\n")
        assert b"$6\r\nSELECT\r\n$1\r\n3\r\n" in server.received

    run(scenario())


def test_a_silent_server_times_every_pending_call_out(
    run: Callable[[Coroutine[Any, Any, None]], None],
) -> None:
    async def scenario() -> None:
        server = ScriptedServer(lambda n: b"+OK\r\n" if n <= 2 else b"")  # AUTH, SELECT, silence
        async with server.running() as url:
            client = RespClient(url, 0.2)
            loop = asyncio.get_running_loop()
            started = loop.time()
            results = await asyncio.gather(
                *(client.call("GET", f"k{n}") for n in range(5)), return_exceptions=True
            )
            waited = loop.time() - started
            assert all(isinstance(result, TimeoutError) for result in results), results
            assert 0.18 <= waited < 1.0  # one deadline for the batch (loop clocks round to ms)
            await client.close()

    run(scenario())


def test_a_dropped_connection_or_garbage_fails_the_call_and_the_next_reconnects(
    run: Callable[[Coroutine[Any, Any, None]], None],
) -> None:
    async def scenario() -> None:
        # Per connection: AUTH and SELECT answered, then the GET: a hang-up, then garbage.
        script = {3: None, 6: b"!garbage\r\n"}
        server = ScriptedServer(lambda n: script.get(n, b"+OK\r\n"))
        async with server.running() as url:
            client = RespClient(url, 1.0)
            with pytest.raises(ConnectionError):
                await client.call("GET", "k")  # the server hangs up on it
            with pytest.raises(ConnectionError, match="unreadable"):
                await client.call("GET", "k")  # a new connection, then garbage
            await client.close()
            assert server.connections == 2

    run(scenario())
