"""Artifact records in a Redis that replicas share (the bytes live on their shared volume).

``artifact:{id}`` holds the record as JSON with a TTL a little past its expiry (so a record can
never outlive its file by long even if no sweep runs); ``artifacts:expiry`` is a sorted set by
``expires_at`` that the sweep of any replica reads.
"""

from __future__ import annotations

import dataclasses

import orjson

from gateway.stores.base import Artifact
from gateway.stores.redis_base import RedisState

RECORD_GRACE_S = 3600  # a record outlives its expiry by this, so the sweep still finds its file


class RedisArtifacts:
    def __init__(self, state: RedisState) -> None:
        self._state = state
        self._expiry = state.key("artifacts", "expiry")

    def _key(self, artifact_id: str) -> str:
        return self._state.key("artifact", artifact_id)

    async def put(self, artifact: Artifact) -> None:
        ttl = max(1, artifact.expires_at - artifact.created_at + RECORD_GRACE_S)
        pipe = self._state.client.pipeline(transaction=True)
        pipe.set(
            self._key(artifact.artifact_id), orjson.dumps(dataclasses.asdict(artifact)), ex=ttl
        )
        pipe.zadd(self._expiry, {artifact.artifact_id: artifact.expires_at})
        await self._state.run(pipe.execute())

    async def get(self, artifact_id: str) -> Artifact | None:
        raw = await self._state.run(self._state.client.get(self._key(artifact_id)))
        return Artifact(**orjson.loads(raw)) if raw is not None else None

    async def delete(self, artifact_id: str) -> None:
        pipe = self._state.client.pipeline(transaction=True)
        pipe.delete(self._key(artifact_id))
        pipe.zrem(self._expiry, artifact_id)
        await self._state.run(pipe.execute())

    async def expired(self, now: int, limit: int) -> list[Artifact]:
        client = self._state.client
        ids = await self._state.run(client.zrangebyscore(self._expiry, "-inf", now, 0, limit))
        found: list[Artifact] = []
        for raw_id in ids:
            artifact_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
            record = await self.get(artifact_id)
            if record is None:
                # The record already expired by its TTL: still report it so its file goes.
                record = Artifact(artifact_id, "", "output", "", "", 0, "", 0, now)
            found.append(record)
        return found
