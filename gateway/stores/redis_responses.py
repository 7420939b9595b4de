"""Stored responses in a Redis that replicas share: ``response:{id}`` holds the record as JSON
with the retention as its TTL, so Redis itself forgets expired ones."""

from __future__ import annotations

import dataclasses

import orjson

from gateway.stores.base import SavedResponse
from gateway.stores.redis_base import RedisState


class RedisResponses:
    def __init__(self, state: RedisState, retention_s: int) -> None:
        self._state = state
        self._retention_s = retention_s

    def _key(self, response_id: str) -> str:
        return self._state.key("response", response_id)

    async def put(self, saved: SavedResponse) -> None:
        record = orjson.dumps(dataclasses.asdict(saved))
        client = self._state.client
        await self._state.run(
            client.set(self._key(saved.response_id), record, ex=self._retention_s)
        )

    async def get(self, response_id: str) -> SavedResponse | None:
        raw = await self._state.run(self._state.client.get(self._key(response_id)))
        return SavedResponse(**orjson.loads(raw)) if raw is not None else None

    async def delete(self, response_id: str) -> bool:
        removed = await self._state.run(self._state.client.delete(self._key(response_id)))
        return bool(removed)
