"""Task records, their per-owner index and the runner's leases in a Redis that replicas share.

- ``task:{id}``: the record as JSON. A status-conditional update is optimistic: WATCH the key,
  check the status, write in MULTI/EXEC, retry if another replica wrote first; so a cancel on
  one replica and a result on another can never both win.
- ``tasks:owner:{owner}``: a sorted set of task ids, all with score 0, read newest first with
  ZREVRANGEBYLEX: ids sort by creation time, so the cursor is simply the last id seen.
- ``tasks:unfinished``: the set of queued or running task ids (what a replica scans for work
  whose runner died).
- ``task:lease:{id}``: which replica drives the task, with a TTL the driver keeps renewing.

Finished records expire after the retention period; index entries of expired records are
dropped lazily when a page meets them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from redis.exceptions import WatchError

from gateway.stores.base import TERMINAL_TASK_STATES, Task, TaskPage
from gateway.stores.redis_base import RedisState

_CAS_ATTEMPTS = 20
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _dump(task: Task) -> bytes:
    return orjson.dumps(dataclasses.asdict(task))


def _load(raw: bytes | str) -> Task:
    return Task(**orjson.loads(raw))


class RedisTasks:
    def __init__(self, state: RedisState, retention_s: float) -> None:
        self._state = state
        self._retention_ms = int(retention_s * 1000)
        self._unfinished = state.key("tasks", "unfinished")
        self._renew = state.register(_RENEW)
        self._release = state.register(_RELEASE)

    def _task_key(self, task_id: str) -> str:
        return self._state.key("task", task_id)

    def _owner_key(self, owner: str) -> str:
        return self._state.key("tasks", "owner", owner)

    async def create(self, task: Task) -> None:
        pipe = self._state.client.pipeline(transaction=True)
        pipe.set(self._task_key(task.task_id), _dump(task))
        pipe.zadd(self._owner_key(task.owner), {task.task_id: 0})
        pipe.sadd(self._unfinished, task.task_id)
        await self._state.run(pipe.execute())

    async def get(self, task_id: str) -> Task | None:
        raw = await self._state.run(self._state.client.get(self._task_key(task_id)))
        return _load(raw) if raw is not None else None

    async def update(
        self, task_id: str, expect: frozenset[str], changes: dict[str, Any]
    ) -> Task | None:
        return await self._state.run(self._update(task_id, expect, changes))

    async def _update(
        self, task_id: str, expect: frozenset[str], changes: dict[str, Any]
    ) -> Task | None:
        key = self._task_key(task_id)
        async with self._state.client.pipeline(transaction=True) as pipe:
            for _ in range(_CAS_ATTEMPTS):
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        return None
                    task = _load(raw)
                    if task.status not in expect:
                        return None
                    task = dataclasses.replace(task, **changes)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    if task.status in TERMINAL_TASK_STATES:
                        pipe.set(key, _dump(task), px=self._retention_ms)
                        pipe.srem(self._unfinished, task_id)
                    else:
                        pipe.set(key, _dump(task))
                    await pipe.execute()
                    return task
                except WatchError:
                    continue
        raise RuntimeError(f"task {task_id} kept changing under a conditional update")

    async def page(
        self,
        owner: str,
        *,
        status: str | None,
        type: str | None,
        after: str | None,
        limit: int,
    ) -> TaskPage:
        client = self._state.client
        index = self._owner_key(owner)
        upper = f"({after}".encode() if after is not None else b"+"
        found: list[Task] = []
        batch = max(limit * 2, 50)
        while True:
            ids = [
                _text(i)
                for i in await self._state.run(
                    client.zrevrangebylex(index, upper, b"-", start=0, num=batch)
                )
            ]
            if not ids:
                return TaskPage(found, None)
            raws = await self._state.run(client.mget([self._task_key(i) for i in ids]))
            gone = [task_id for task_id, raw in zip(ids, raws, strict=True) if raw is None]
            if gone:
                await self._state.run(client.zrem(index, *gone))
            for raw in raws:
                if raw is None:
                    continue
                task = _load(raw)
                if (status is None or task.status == status) and (
                    type is None or task.type == type
                ):
                    if len(found) == limit:
                        return TaskPage(found, found[-1].task_id)
                    found.append(task)
            upper = f"({ids[-1]}".encode()

    async def unfinished(self) -> list[Task]:
        client = self._state.client
        ids = await self._state.run(client.smembers(self._unfinished))
        if not ids:
            return []
        raws = await self._state.run(client.mget([self._task_key(_text(i)) for i in ids]))
        return [
            task
            for task in (_load(raw) for raw in raws if raw is not None)
            if task.status not in TERMINAL_TASK_STATES
        ]

    async def prune(self, finished_before: int) -> int:
        return 0  # finished records carry a TTL; index entries go lazily in ``page``

    # -- leases -----------------------------------------------------------------------------

    def _lease_key(self, task_id: str) -> str:
        return self._state.key("task", "lease", task_id)

    async def acquire_lease(self, task_id: str, holder: str, ttl_s: float) -> bool:
        client = self._state.client
        taken = await self._state.run(
            client.set(self._lease_key(task_id), holder, nx=True, px=int(ttl_s * 1000))
        )
        return bool(taken)

    async def renew_lease(self, task_id: str, holder: str, ttl_s: float) -> bool:
        renewed = await self._state.run(
            self._renew(keys=[self._lease_key(task_id)], args=[holder, int(ttl_s * 1000)])
        )
        return bool(renewed)

    async def release_lease(self, task_id: str, holder: str) -> None:
        await self._state.run(self._release(keys=[self._lease_key(task_id)], args=[holder]))
