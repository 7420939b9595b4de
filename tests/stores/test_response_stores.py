"""The stored-responses contract, against memory and a real Redis: put, get, delete, retention."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateway.stores.base import ResponseStore, SavedResponse
from gateway.stores.memory_responses import MemoryResponses
from gateway.stores.redis_responses import RedisResponses
from tests.conftest import FakeClock
from tests.stores.test_store_contracts import BACKENDS, backend_url, fresh_prefix, replica, run

RETENTION_S = 100


def saved(response_id: str, owner: str = "dev") -> SavedResponse:
    items = [{"type": "message", "role": "user", "content": "hi"}]
    response = {"id": response_id, "object": "response", "output": [], "metadata": {"é": "ü"}}
    return SavedResponse(response_id, owner, items, response)


@pytest.fixture(params=BACKENDS)
def responses(request: pytest.FixtureRequest) -> Callable[[], ResponseStore]:
    url, prefix = backend_url(request), fresh_prefix()
    if url is None:
        return lambda: MemoryResponses(RETENTION_S, 10, FakeClock())
    return lambda: RedisResponses(replica(url, prefix), RETENTION_S)


def test_put_get_and_delete(responses: Callable[[], ResponseStore]) -> None:
    async def scenario() -> None:
        store = responses()
        assert await store.get("resp_a") is None
        await store.put(saved("resp_a"))
        await store.put(saved("resp_b", owner="second"))
        assert await store.get("resp_a") == saved("resp_a")  # the same record, exactly
        assert (await store.get("resp_b")) == saved("resp_b", owner="second")
        assert await store.delete("resp_a") is True
        assert await store.get("resp_a") is None
        assert await store.delete("resp_a") is False
        assert await store.get("resp_b") is not None

    run(scenario())


def test_memory_forgets_after_the_retention_and_past_its_bound() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        store = MemoryResponses(RETENTION_S, 3, clock)
        await store.put(saved("resp_old"))
        clock.advance(RETENTION_S - 1)
        assert await store.get("resp_old") is not None
        clock.advance(1)
        assert await store.get("resp_old") is None  # the retention ran out
        for name in ("resp_1", "resp_2", "resp_3", "resp_4"):
            await store.put(saved(name))
        assert await store.get("resp_1") is None  # the oldest went when the fourth came
        assert [await store.get(n) is not None for n in ("resp_2", "resp_3", "resp_4")] == [
            True,
            True,
            True,
        ]

    run(scenario())


def test_redis_keeps_a_response_for_the_retention_on_every_replica(redis_url: str) -> None:
    async def scenario() -> None:
        prefix = fresh_prefix()
        state = replica(redis_url, prefix)
        await RedisResponses(state, RETENTION_S).put(saved("resp_t"))
        ttl = await state.client.ttl(state.key("response", "resp_t"))
        assert RETENTION_S - 2 <= ttl <= RETENTION_S
        other_replica = RedisResponses(replica(redis_url, prefix), RETENTION_S)
        assert await other_replica.get("resp_t") == saved("resp_t")

    run(scenario())
