"""The task store and artifact index contract, against memory and a real redis-server alike."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from gateway.contract.ids import new_task_id
from gateway.stores.base import Artifact, ArtifactIndex, Task, TaskStore
from gateway.stores.memory_artifacts import MemoryArtifacts
from gateway.stores.memory_tasks import MemoryTasks
from gateway.stores.redis_artifacts import RedisArtifacts
from gateway.stores.redis_base import RedisState
from gateway.stores.redis_tasks import RedisTasks

_prefixes = itertools.count()
Stores = Callable[[], Any]


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> Stores:
    """Yields an async context manager giving (task store, artifact index) on a clean slate."""

    @asynccontextmanager
    async def open_stores() -> AsyncIterator[tuple[TaskStore, ArtifactIndex, Any]]:
        if request.param == "memory":
            yield MemoryTasks(), MemoryArtifacts(), None
            return
        url = request.getfixturevalue("redis_url")
        state = RedisState(url, f"test{next(_prefixes)}:{id(request)}:", 0.5)
        try:
            yield RedisTasks(state, 3600), RedisArtifacts(state), state
        finally:
            await state.close()

    return open_stores


def task(owner: str = "a", status: str = "queued", kind: str = "music.text") -> Task:
    return Task(
        task_id=new_task_id(),
        owner=owner,
        type=kind,
        status=status,
        model="m",
        created_at=1,
        updated_at=1,
        params={"prompt": "x", "plan": [{"model": "m"}], "seed": None},
        request_id="req_1",
    )


def test_conditional_updates_make_cancel_final(backend: Stores) -> None:
    async def scenario() -> None:
        async with backend() as (tasks, _, _state):
            record = task()
            await tasks.create(record)
            running = await tasks.update(
                record.task_id, frozenset({"queued"}), {"status": "running", "progress": 0.5}
            )
            assert running is not None and running.progress == 0.5
            canceled = await tasks.update(
                record.task_id, frozenset({"queued", "running"}), {"status": "canceled"}
            )
            assert canceled is not None
            late = await tasks.update(
                record.task_id, frozenset({"running"}), {"status": "succeeded"}
            )
            assert late is None
            stored = await tasks.get(record.task_id)
            assert stored is not None and stored.status == "canceled"
            assert stored.params == record.params
            assert await tasks.unfinished() == []
            assert await tasks.get("task_missing") is None

    asyncio.run(scenario())


def test_pages_are_newest_first_per_owner_with_filters_and_cursor(backend: Stores) -> None:
    async def scenario() -> None:
        async with backend() as (tasks, _, _state):
            mine = []
            for n in range(7):
                record = task(status="succeeded" if n % 2 else "queued")
                await tasks.create(record)
                mine.append(record.task_id)
                await tasks.create(task(owner="b"))
                await asyncio.sleep(0.002)  # ids carry milliseconds
            seen: list[str] = []
            after = None
            while True:
                page = await tasks.page("a", status=None, type=None, after=after, limit=3)
                seen += [t.task_id for t in page.tasks]
                if page.next_cursor is None:
                    break
                after = page.next_cursor
            assert seen == mine[::-1]
            done = await tasks.page("a", status="succeeded", type=None, after=None, limit=10)
            assert [t.task_id for t in done.tasks] == mine[1::2][::-1]
            none = await tasks.page(
                "a", status=None, type="music.reference_audio", after=None, limit=5
            )
            assert none.tasks == [] and none.next_cursor is None
            unfinished = {t.task_id for t in await tasks.unfinished() if t.owner == "a"}
            assert unfinished == set(mine[0::2])

    asyncio.run(scenario())


def test_leases_belong_to_one_holder_until_released_or_expired(backend: Stores) -> None:
    async def scenario() -> None:
        async with backend() as (tasks, _, state):
            record = task()
            await tasks.create(record)
            assert await tasks.acquire_lease(record.task_id, "one", 0.3)
            if state is None:
                return  # one process: every lease is its own
            assert not await tasks.acquire_lease(record.task_id, "two", 0.3)
            assert await tasks.renew_lease(record.task_id, "one", 0.3)
            assert not await tasks.renew_lease(record.task_id, "two", 0.3)
            await tasks.release_lease(record.task_id, "two")  # not its lease: no effect
            assert not await tasks.acquire_lease(record.task_id, "two", 0.3)
            await tasks.release_lease(record.task_id, "one")
            assert await tasks.acquire_lease(record.task_id, "two", 0.2)
            await asyncio.sleep(0.3)  # the holder stopped renewing: the lease expires
            assert await tasks.acquire_lease(record.task_id, "one", 0.2)

    asyncio.run(scenario())


def test_artifact_records_expire_in_order(backend: Stores) -> None:
    async def scenario() -> None:
        async with backend() as (_, artifacts, _state):

            def record(n: int, expires_at: int) -> Artifact:
                return Artifact(
                    f"art_{n}", "a", "upload", "f.wav", "audio/wav", 10, "00", 100, expires_at
                )

            for n, expires in enumerate((300, 200, 500)):
                await artifacts.put(record(n, expires))
            got = await artifacts.get("art_1")
            assert got is not None and got.expires_at == 200 and got.owner == "a"
            assert [a.artifact_id for a in await artifacts.expired(250, 10)] == ["art_1"]
            await artifacts.delete("art_1")
            assert await artifacts.get("art_1") is None
            due = await artifacts.expired(1000, 10)
            assert {a.artifact_id for a in due} == {"art_0", "art_2"}

    asyncio.run(scenario())
