"""The contract every store backend must keep, run here against the in-memory backend."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from gateway.stores.base import Demand, StoredResponse
from gateway.stores.memory_cooldowns import MemoryCooldowns
from gateway.stores.memory_idempotency import MemoryIdempotency
from gateway.stores.memory_limits import MemoryRateLimiter


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def answer(body: bytes = b"{}") -> StoredResponse:
    return StoredResponse(200, b"application/json", body)


IdempotencyFactory = Callable[..., MemoryIdempotency]


@pytest.fixture(params=["memory"])
def idempotency(request: pytest.FixtureRequest) -> IdempotencyFactory:
    def make(window_s: float = 100, max_entries: int = 10, max_bytes: int = 1000) -> Any:
        return MemoryIdempotency(window_s, max_entries, max_bytes)

    return make


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
        assert (await store.claim("k", "fp", 102)).state == "new"  # the window is over

    run(scenario())


def test_waiters_wake_on_complete_and_release(idempotency: IdempotencyFactory) -> None:
    async def scenario() -> None:
        store = idempotency()
        await store.claim("k", "fp", 0)
        waiter = asyncio.create_task(store.wait("k"))
        await asyncio.sleep(0)
        assert not waiter.done()
        await store.complete("k", answer(), 1)
        await asyncio.wait_for(waiter, 1)
        await store.claim("j", "fp", 0)
        waiter = asyncio.create_task(store.wait("j"))
        await asyncio.sleep(0)
        await store.release("j")
        await asyncio.wait_for(waiter, 1)
        await store.wait("unknown")  # nothing running: returns at once

    run(scenario())


def test_caps_evict_the_oldest_finished_never_a_running_key(
    idempotency: IdempotencyFactory,
) -> None:
    async def scenario() -> None:
        store = idempotency(max_entries=3, max_bytes=250)
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


def test_buckets_admit_refuse_and_refill() -> None:
    async def scenario() -> None:
        limiter = MemoryRateLimiter()
        rpm = Demand("key:a:requests", 2, 1)
        first = await limiter.acquire([rpm], 0)
        assert first.allowed and first.states == [(1, 30.0)]
        assert (await limiter.acquire([rpm], 0)).allowed
        refused = await limiter.acquire([rpm], 0)
        assert not refused.allowed and refused.retry_after_s == 30.0
        assert (await limiter.acquire([rpm], 30)).allowed
        # All or nothing: a refused token demand takes no request either.
        tokens = Demand("key:b:tokens", 100, 80)
        requests = Demand("key:b:requests", 10, 1)
        assert (await limiter.acquire([requests, tokens], 0)).allowed
        refused = await limiter.acquire([requests, tokens], 0)
        assert not refused.allowed
        assert refused.states[0][0] == 9  # the request bucket was not charged
        await limiter.adjust(tokens, 70, 0)  # the call used 10 tokens, not 80
        assert (await limiter.acquire([requests, tokens], 0)).allowed
        # A demand over the capacity is admitted on a full bucket only.
        big = Demand("key:c:tokens", 100, 500)
        assert (await limiter.acquire([big], 0)).allowed
        assert not (await limiter.acquire([big], 0)).allowed

    run(scenario())


def test_cooldowns_open_after_failures_and_close_on_success() -> None:
    async def scenario() -> None:
        breakers = MemoryCooldowns(failures_to_cool=2, cool_seconds=10)
        assert await breakers.available("d", 0)
        assert not await breakers.failure("d", 0, None)
        assert await breakers.failure("d", 1, None)
        assert not await breakers.available("d", 5) and breakers.cooling(5) == ["d"]
        assert await breakers.available("d", 11)
        await breakers.success("d")
        assert not await breakers.failure("d", 12, None)
        assert await breakers.failure("e", 0, 30.0)  # cool at once for a given time
        assert not await breakers.available("e", 29) and await breakers.available("e", 30)

    run(scenario())
