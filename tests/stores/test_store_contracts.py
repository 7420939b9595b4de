"""The contract every store backend must keep, run against memory and against a real Redis.

Each Redis variant gets a fresh key prefix on the session's redis-server. The Redis-only tests
at the end show what only a shared backend has: two ``RedisState`` objects (two replicas) seeing
each other's buckets, claims and breakers, and waiters woken across replicas by pub/sub. Redis
failing is ``test_redis_outages``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from gateway.stores.base import (
    Admission,
    CooldownStore,
    Demand,
    IdempotencyStore,
    RateLimitStore,
    StoredResponse,
)
from gateway.stores.memory_cooldowns import MemoryCooldowns
from gateway.stores.memory_idempotency import MemoryIdempotency
from gateway.stores.memory_limits import MemoryRateLimiter
from gateway.stores.redis_base import RedisState
from gateway.stores.redis_cooldowns import RedisCooldowns
from gateway.stores.redis_idempotency import RedisIdempotency
from gateway.stores.redis_limits import RedisRateLimiter

BACKENDS = ["memory", "redis"]
TIMEOUT_S = 0.2  # the Redis call timeout of these tests: "down" must show within a few of it
_open_states: list[RedisState] = []  # closed by ``run`` inside the loop that used them


def run(scenario: Coroutine[Any, Any, None]) -> None:
    async def then_close() -> None:
        try:
            await scenario
        finally:
            while _open_states:
                await _open_states.pop().close()

    asyncio.run(then_close())


def replica(url: str, prefix: str, timeout_s: float = TIMEOUT_S) -> RedisState:
    """One replica's connection; replicas built with the same prefix share all state."""
    state = RedisState(url, prefix, timeout_s)
    _open_states.append(state)
    return state


def fresh_prefix() -> str:
    return f"test:{uuid.uuid4().hex}:"


def rounded(admission: Admission) -> list[tuple[int, float]]:
    """The states with their refill times rounded past float noise (e.g. 2 / (2 / 60))."""
    return [(whole, round(seconds, 9)) for whole, seconds in admission.states]


def answer(body: bytes = b"{}") -> StoredResponse:
    return StoredResponse(200, b"application/json", body)


def backend_url(request: pytest.FixtureRequest) -> str | None:
    """The session's Redis for a ``redis`` variant (only those start the server)."""
    return str(request.getfixturevalue("redis_url")) if request.param == "redis" else None


IdempotencyFactory = Callable[..., IdempotencyStore]


@pytest.fixture(params=BACKENDS)
def idempotency(request: pytest.FixtureRequest) -> IdempotencyFactory:
    url, prefix = backend_url(request), fresh_prefix()

    def make(
        window_s: float = 100, max_entries: int = 10, max_bytes: int = 1000
    ) -> IdempotencyStore:
        if url is None:
            return MemoryIdempotency(window_s, max_entries, max_bytes)
        return RedisIdempotency(replica(url, prefix), window_s, max_entries, max_bytes)

    return make


@pytest.fixture(params=BACKENDS)
def limiter(request: pytest.FixtureRequest) -> Callable[[], RateLimitStore]:
    url, prefix = backend_url(request), fresh_prefix()
    if url is None:
        return MemoryRateLimiter
    return lambda: RedisRateLimiter(replica(url, prefix))


@pytest.fixture(params=BACKENDS)
def cooldowns(request: pytest.FixtureRequest) -> Callable[[int, float], CooldownStore]:
    url, prefix = backend_url(request), fresh_prefix()
    if url is None:
        return MemoryCooldowns
    return lambda failures, seconds: RedisCooldowns(replica(url, prefix), failures, seconds)


def test_claim_replay_conflict_and_release(idempotency: IdempotencyFactory) -> None:
    async def scenario() -> None:
        store = idempotency()
        assert (await store.claim("k", "fp", 0)).state == "new"
        assert (await store.claim("k", "fp", 1)).state == "in_progress"
        assert (await store.claim("k", "other", 1)).state == "conflict"
        await store.complete("k", answer(b"A"), 2)
        replay = await store.claim("k", "fp", 3)
        assert replay.state == "replay" and replay.response == answer(b"A")
        assert (await store.claim("k", "other", 3)).state == "conflict"
        assert (await store.claim("r", "fp", 3)).state == "new"
        await store.release("r")
        assert (await store.claim("r", "fp", 4)).state == "new"  # released: runs again
        assert (await store.claim("u", "fp", 4)).state == "new"
        await store.complete("u", None, 5)
        assert (await store.claim("u", "fp", 6)).state == "unreplayable"
        await store.release("u")  # a completed key is not forgotten by a release
        assert (await store.claim("u", "fp", 6)).state == "unreplayable"
        await store.complete("never-claimed", answer(), 6)
        assert (await store.claim("never-claimed", "fp", 7)).state == "new"
        binary = StoredResponse(201, b"audio/mpeg", bytes(range(256)) * 4)
        await store.claim("b", "fp", 7)
        await store.complete("b", binary, 7)
        assert (await store.claim("b", "fp", 8)).response == binary  # exact bytes back
        assert (await store.claim("k", "fp", 102)).state == "new"  # the window is over

    run(scenario())


def test_waiters_wake_on_complete_and_release(idempotency: IdempotencyFactory) -> None:
    async def scenario() -> None:
        store = idempotency()
        await store.claim("k", "fp", 0)
        waiter = asyncio.create_task(store.wait("k"))
        await asyncio.sleep(0.02)
        assert not waiter.done()
        await store.complete("k", answer(), 1)
        await asyncio.wait_for(waiter, 1)
        await store.claim("j", "fp", 0)
        waiter = asyncio.create_task(store.wait("j"))
        await asyncio.sleep(0.02)
        assert not waiter.done()
        await store.release("j")
        await asyncio.wait_for(waiter, 1)
        await store.wait("unknown")  # nothing running: returns at once
        await store.wait("k")  # completed: returns at once

    run(scenario())


def test_memory_caps_evict_the_oldest_finished_never_a_running_key() -> None:
    # Memory only: Redis bounds idempotency entries by their TTL and by the server's maxmemory.
    async def scenario() -> None:
        store = MemoryIdempotency(100, max_entries=3, max_total_bytes=250)
        for key in ("a", "b", "c"):
            await store.claim(key, "fp", 0)
        assert len(store) == 3
        await store.claim("d", "fp", 0)  # all three still running: none may go
        assert len(store) == 4
        for key in ("b", "a", "c", "d"):
            await store.complete(key, answer(b"x" * 100), 1)
        # 400 bytes > 250: the oldest finished ("b", then "a") were dropped.
        assert (await store.claim("b", "fp", 2)).state == "new"
        assert (await store.claim("c", "fp", 2)).state == "replay"
        assert store.stored_bytes <= 250

    run(scenario())


def test_buckets_admit_refuse_and_refill(limiter: Callable[[], RateLimitStore]) -> None:
    async def scenario() -> None:
        store = limiter()
        rpm = Demand("key:a:requests", 2, 1)
        first = await store.acquire([rpm], 0)
        assert first.allowed and first.states == [(1, 30.0)]
        assert (await store.acquire([rpm], 0)).allowed
        refused = await store.acquire([rpm], 0)
        assert not refused.allowed and refused.retry_after_s == 30.0
        assert rounded(refused) == [(0, 60.0)]
        assert (await store.acquire([rpm], 30)).allowed
        # All or nothing: a refused token demand takes no request either.
        tokens = Demand("key:b:tokens", 100, 80)
        requests = Demand("key:b:requests", 10, 1)
        assert (await store.acquire([requests, tokens], 0)).allowed
        refused = await store.acquire([requests, tokens], 0)
        assert not refused.allowed and refused.retry_after_s == pytest.approx(36.0)
        assert refused.states[0][0] == 9  # the request bucket was not charged
        await store.adjust([(tokens, 70)], 0)  # the call used 10 tokens, not 80
        assert (await store.acquire([requests, tokens], 0)).allowed
        await store.adjust([(tokens, 10_000)], 0)  # refunds stop at the capacity
        assert rounded(await store.acquire([tokens], 0)) == [(20, 48.0)]
        await store.adjust([(tokens, -20)], 0)  # taking more once the real cost is known
        assert not (await store.acquire([tokens], 0)).allowed
        # One call changes several buckets, each by its own delta.
        key_tokens, model_tokens = Demand("key:d:tokens", 100, 60), Demand("model:d:tokens", 50, 50)
        assert (await store.acquire([key_tokens, model_tokens], 0)).allowed
        await store.adjust([(key_tokens, 10), (model_tokens, 30)], 0)
        peek = [Demand(key_tokens.bucket, 100, 0), Demand(model_tokens.bucket, 50, 0)]
        assert [level for level, _ in (await store.acquire(peek, 0)).states] == [50, 30]
        # A demand over the capacity is admitted on a full bucket only, and drives it negative.
        big = Demand("key:c:tokens", 100, 500)
        admitted = await store.acquire([big], 0)
        assert admitted.allowed and rounded(admitted) == [(0, 300.0)]
        refused = await store.acquire([big], 0)
        assert not refused.allowed and refused.retry_after_s == pytest.approx(300.0)
        assert not (await store.acquire([big], 299)).allowed
        assert (await store.acquire([big], 301)).allowed

    run(scenario())


def test_cooldowns_open_after_failures_and_close_on_success(
    cooldowns: Callable[[int, float], CooldownStore],
) -> None:
    async def scenario() -> None:
        breakers = cooldowns(2, 10)
        assert await breakers.available("d", 0)
        assert not await breakers.failure("d", 0, None)
        assert await breakers.failure("d", 1, None)
        assert not await breakers.available("d", 5) and breakers.cooling(5) == ["d"]
        assert await breakers.available("d", 11)
        assert breakers.cooling(11) == []
        assert await breakers.failure("d", 11, None)  # the trial failed: rests again
        assert not await breakers.available("d", 12)
        assert await breakers.available("d", 21)
        await breakers.success("d")
        assert not await breakers.failure("d", 22, None)
        assert await breakers.failure("e", 0, 30.0)  # cool at once for a given time
        assert not await breakers.available("e", 29) and await breakers.available("e", 30)

    run(scenario())


def test_exactly_one_caller_gets_the_half_open_trial(
    cooldowns: Callable[[int, float], CooldownStore],
) -> None:
    async def scenario() -> None:
        breakers = cooldowns(1, 10)
        assert await breakers.failure("d", 0, None)
        callers = await asyncio.gather(*(breakers.available("d", 10) for _ in range(20)))
        assert callers.count(True) == 1
        assert not await breakers.available("d", 10.01)  # the trial is out: nobody else
        assert await breakers.failure("d", 10.02, None)  # the trial failed: rests again
        assert not await breakers.available("d", 15)
        assert [await breakers.available("d", 21) for _ in range(3)] == [True, False, False]
        await breakers.success("d")  # the trial succeeded: open to everybody
        assert all(await asyncio.gather(*(breakers.available("d", 22) for _ in range(5))))

    run(scenario())


def test_a_memory_trial_that_never_reports_frees_itself_after_its_lease() -> None:
    async def scenario() -> None:
        breakers = MemoryCooldowns(1, 10, trial_s=5)
        assert await breakers.failure("d", 0, None)
        assert await breakers.available("d", 10)
        assert not await breakers.available("d", 14.9)
        assert await breakers.available("d", 15)  # the lease ran out: a new trial
        assert not await breakers.available("d", 15)

    run(scenario())


# Redis only: what a shared backend adds.


def test_replicas_share_buckets_and_never_overspend(redis_url: str) -> None:
    async def scenario() -> None:
        prefix = fresh_prefix()
        one = RedisRateLimiter(replica(redis_url, prefix))
        two = RedisRateLimiter(replica(redis_url, prefix))
        rpm = Demand("key:a:requests", 10, 1)
        calls = [(one if n % 2 else two).acquire([rpm], 0) for n in range(30)]
        admitted = [a.allowed for a in await asyncio.gather(*calls)]
        assert admitted.count(True) == 10
        await one.adjust([(rpm, 3)], 0)
        assert rounded(await two.acquire([rpm], 0)) == [(2, 48.0)]
        state = replica(redis_url, prefix)
        ttl_ms = await state.client.pttl(state.key("bucket", "key:a:requests"))
        assert 60_000 < ttl_ms <= 120_000  # idle buckets vanish after about two periods

    run(scenario())


def test_replicas_share_claims(redis_url: str) -> None:
    async def scenario() -> None:
        prefix = fresh_prefix()
        one = RedisIdempotency(replica(redis_url, prefix), 100, 10, 1000)
        two = RedisIdempotency(replica(redis_url, prefix), 100, 10, 1000)
        stores = (one, two) * 5
        claims = await asyncio.gather(*(store.claim("k", "fp", 0) for store in stores))
        assert [claim.state for claim in claims].count("new") == 1
        owner = next(s for s, claim in zip(stores, claims, strict=True) if claim.state == "new")
        other = two if owner is one else one
        assert (await other.claim("k", "other", 0)).state == "conflict"
        await other.complete("k", answer(b"not the owner"), 1)  # only the claimer settles a key
        await other.release("k")
        assert (await other.claim("k", "fp", 1)).state == "in_progress"
        await owner.complete("k", answer(b"A"), 1)
        assert (await other.claim("k", "fp", 2)).response == answer(b"A")

    run(scenario())


def test_a_waiter_on_one_replica_wakes_by_pubsub_when_another_ends(redis_url: str) -> None:
    async def scenario() -> None:
        prefix = fresh_prefix()
        owner = RedisIdempotency(replica(redis_url, prefix), 100, 10, 1000)
        # The fallback re-check is an hour away: only the published message can wake it.
        waiter = RedisIdempotency(replica(redis_url, prefix), 100, 10, 1000, poll_s=3600)
        await owner.claim("k", "fp", 0)
        await owner.claim("j", "fp", 0)
        endings = [("k", owner.complete("k", answer(), 1)), ("j", owner.release("j"))]
        for scope, ending in endings:
            waiting = asyncio.create_task(waiter.wait(scope))
            await asyncio.sleep(0.05)
            assert not waiting.done()
            ended = time.monotonic()
            await ending
            await asyncio.wait_for(waiting, 1)
            assert time.monotonic() - ended < 0.4

    run(scenario())


def test_a_crashed_owner_frees_its_key_and_waiters_notice_without_a_message(
    redis_url: str,
) -> None:
    async def scenario() -> None:
        prefix = fresh_prefix()
        # This owner dies mid-request: its renewals stop, its lease runs out (nothing is published).
        crashed = RedisIdempotency(replica(redis_url, prefix), 100, 10, 1000, lease_s=0.05)
        other = RedisIdempotency(replica(redis_url, prefix), 100, 10, 1000, poll_s=0.02)
        assert (await crashed.claim("k", "fp", 0)).state == "new"
        assert (await other.claim("k", "fp", 0)).state == "in_progress"
        await asyncio.sleep(0.15)  # three leases: renewed while its replica lives
        assert (await other.claim("k", "fp", 0)).state == "in_progress"
        await crashed.close()
        started = time.monotonic()
        await asyncio.wait_for(other.wait("k"), 1)  # woken by the fallback re-check
        assert 0.02 < time.monotonic() - started < 0.5
        assert (await other.claim("k", "fp", 1)).state == "new"
        # The request that outlived its lease finishes late: it must not settle the new claim.
        await crashed.complete("k", answer(b"late"), 2)
        await crashed.release("k")
        assert (await other.claim("k", "fp", 2)).state == "in_progress"
        await other.complete("k", answer(b"current"), 3)
        assert (await crashed.claim("k", "fp", 4)).response == answer(b"current")

    run(scenario())


def test_replicas_share_breakers_and_exactly_one_caller_gets_the_trial(redis_url: str) -> None:
    async def scenario() -> None:
        prefix = fresh_prefix()
        one = RedisCooldowns(replica(redis_url, prefix), 2, 10, trial_s=0.05)
        two = RedisCooldowns(replica(redis_url, prefix), 2, 10, trial_s=0.05)
        assert not await one.failure("d", 0, None)
        assert await two.failure("d", 1, None)  # consecutive across replicas
        assert one.cooling(5) == []  # only what this replica has seen so far
        assert not await one.available("d", 5) and one.cooling(5) == ["d"]
        callers = [(one, two)[n % 2].available("d", 12) for n in range(20)]
        assert (await asyncio.gather(*callers)).count(True) == 1
        await asyncio.sleep(0.08)  # the trial's caller never reported: its lease ran out
        callers = [(one, two)[n % 2].available("d", 13) for n in range(20)]
        assert (await asyncio.gather(*callers)).count(True) == 1
        await two.success("d")  # the trial succeeded: open to everybody again
        assert all(await asyncio.gather(*(one.available("d", 14) for _ in range(5))))
        assert not await one.failure("d", 15, None)

    run(scenario())
