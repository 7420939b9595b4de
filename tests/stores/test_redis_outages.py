"""Redis failing under the stores: gone, hung, stopped mid-wait, restarted empty.

Every call must then fail promptly with ``StateUnavailable`` (never hang), except settling an
Idempotency-Key: a finished answer waits in the write-back buffer until Redis is back, and the
claims a replica still holds come back after an empty restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from gateway.stores.base import Demand, StateUnavailable
from gateway.stores.redis_base import RedisState
from gateway.stores.redis_cooldowns import RedisCooldowns
from gateway.stores.redis_idempotency import RedisIdempotency
from gateway.stores.redis_limits import RedisRateLimiter
from tests.redis_server import running_redis
from tests.stores.test_store_contracts import TIMEOUT_S, answer, fresh_prefix, replica, run


def silent_port() -> tuple[socket.socket, int]:
    """A port that accepts connections and never answers: Redis hung rather than gone."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    return listener, listener.getsockname()[1]


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def assert_every_call_is_unavailable(state: RedisState) -> None:
    limiter = RedisRateLimiter(state)
    breakers = RedisCooldowns(state, 2, 10)
    keys = RedisIdempotency(state, 100, 10, 1000, poll_s=3600)
    demand = Demand("key:a:requests", 10, 1)
    calls: list[Callable[[], Coroutine[Any, Any, object]]] = [
        lambda: limiter.acquire([demand], 0),
        lambda: limiter.adjust([(demand, 1)], 0),
        lambda: breakers.available("d", 0),
        lambda: breakers.failure("d", 0, None),
        lambda: breakers.success("d"),
        lambda: keys.claim("k", "fp", 0),
        lambda: keys.wait("k"),
    ]
    for call in calls:
        started = time.monotonic()
        with pytest.raises(StateUnavailable):
            await call()
        assert time.monotonic() - started < state.timeout_s * 4 + 0.3
    # Settling a key never fails: an answer waits in the write-back buffer, a release for the
    # lease to run out (test_an_answer_finished_while_redis_is_away_is_written_back).
    for settle in (keys.complete("k", answer(), 0), keys.release("k")):
        started = time.monotonic()
        await settle
        assert time.monotonic() - started < state.timeout_s * 4 + 0.3


def test_redis_gone_or_hung_makes_every_call_unavailable_promptly() -> None:
    listener, hung = silent_port()

    async def scenario() -> None:
        for port in (closed_port(), hung):
            await assert_every_call_is_unavailable(
                replica(f"redis://127.0.0.1:{port}/0", fresh_prefix())
            )

    try:
        run(scenario())
    finally:
        listener.close()


def test_redis_stopping_mid_wait_fails_the_waiter_and_later_calls() -> None:
    with running_redis() as server:

        async def scenario() -> None:
            state = replica(server.url, fresh_prefix())
            keys = RedisIdempotency(state, 100, 10, 1000, poll_s=3600)
            assert (await keys.claim("k", "fp", 0)).state == "new"
            waiting = asyncio.create_task(keys.wait("k"))
            await asyncio.sleep(0.05)
            server.stop()
            with pytest.raises(StateUnavailable):
                await asyncio.wait_for(waiting, TIMEOUT_S * 4 + 0.5)
            await assert_every_call_is_unavailable(state)

        run(scenario())


async def until_marked(
    url: str, prefix: str, scope: str, done: bytes, within_s: float = 5.0
) -> None:
    """Poll Redis, as a third replica would see it, until the key's ``done`` field is ``done``
    (b"0": claimed and running, b"1": answered); fail after ``within_s``."""
    observer = replica(url, prefix)
    entry = observer.key("idem", scope)
    deadline = time.monotonic() + within_s
    while True:
        with contextlib.suppress(StateUnavailable):
            if await observer.run(observer.client.hget(entry, "done")) == done:
                return
        assert time.monotonic() < deadline, f"{scope} never marked {done!r}"
        await asyncio.sleep(0.02)


def holder_and_waiter(url: str, prefix: str) -> tuple[RedisIdempotency, RedisIdempotency]:
    """Two replicas' stores: one that claims (short lease), one that waits (quick re-checks)."""
    holder = RedisIdempotency(replica(url, prefix), 100, 10, 10_000, lease_s=0.5)
    waiter = RedisIdempotency(replica(url, prefix), 100, 10, 10_000, poll_s=0.05)
    return holder, waiter


def test_an_answer_finished_while_redis_is_away_is_kept_and_written_back() -> None:
    with running_redis() as server:

        async def scenario() -> None:
            prefix = fresh_prefix()
            one, two = holder_and_waiter(server.url, prefix)
            assert (await one.claim("k", "fp", 0)).state == "new"
            server.stop()
            await one.complete("k", answer(b"paid for"), 1)  # no error: the client gets it
            # Duplicates on this replica are replayed from the buffer while Redis is away.
            assert (await one.claim("k", "fp", 2)).response == answer(b"paid for")
            assert (await one.claim("k", "other", 2)).state == "conflict"
            server.restart()  # back, and empty
            # Written back without anybody asking for it.
            await until_marked(server.url, prefix, "k", b"1")
            assert (await two.claim("k", "fp", 3)).response == answer(b"paid for")

        run(scenario())


def test_held_claims_come_back_after_an_empty_restart_and_a_dead_holders_go() -> None:
    with running_redis() as server:

        async def scenario() -> None:
            prefix = fresh_prefix()
            one, two = holder_and_waiter(server.url, prefix)
            assert (await one.claim("k", "fp", 0)).state == "new"
            server.restart()
            # The running request's claim is back within a renewal.
            await until_marked(server.url, prefix, "k", b"0")
            assert (await two.claim("k", "fp", 1)).state == "in_progress"
            await one.complete("k", answer(b"once"), 2)
            assert (await two.claim("k", "fp", 3)).response == answer(b"once")
            # A holder that dies (no more renewals) frees its key within its lease.
            assert (await one.claim("j", "fp", 4)).state == "new"
            await one.close()
            started = time.monotonic()
            await asyncio.wait_for(two.wait("j"), 2)
            assert time.monotonic() - started < 0.5 + 0.3
            assert (await two.claim("j", "fp", 5)).state == "new"

        run(scenario())
