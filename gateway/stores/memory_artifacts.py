"""The in-memory artifact index: records of one process, ordered by expiry for the sweeper."""

from __future__ import annotations

import heapq

from gateway.stores.base import Artifact


class MemoryArtifacts:
    def __init__(self) -> None:
        self._records: dict[str, Artifact] = {}
        # (expires_at, id) pairs; a deleted record's pair is skipped when it comes up.
        self._expiry: list[tuple[int, str]] = []

    async def put(self, artifact: Artifact) -> None:
        self._records[artifact.artifact_id] = artifact
        heapq.heappush(self._expiry, (artifact.expires_at, artifact.artifact_id))

    async def get(self, artifact_id: str) -> Artifact | None:
        return self._records.get(artifact_id)

    async def delete(self, artifact_id: str) -> None:
        self._records.pop(artifact_id, None)

    async def expired(self, now: int, limit: int) -> list[Artifact]:
        found: list[Artifact] = []
        while self._expiry and self._expiry[0][0] <= now and len(found) < limit:
            expires_at, artifact_id = heapq.heappop(self._expiry)
            record = self._records.get(artifact_id)
            if record is not None and record.expires_at == expires_at:
                found.append(record)
        return found
