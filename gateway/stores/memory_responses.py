"""Stored responses of one process, kept for the retention and at most ``max_stored`` of them.

Every response is kept for the same time, so insertion order is expiry order: expired ones and,
past the bound, the oldest are dropped from the front when a new one arrives.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from gateway.stores.base import SavedResponse


class MemoryResponses:
    def __init__(self, retention_s: float, max_stored: int, clock: Callable[[], float]) -> None:
        self._retention_s = retention_s
        self._max = max_stored
        self._clock = clock
        self._saved: OrderedDict[str, tuple[float, SavedResponse]] = OrderedDict()

    async def put(self, saved: SavedResponse) -> None:
        now = self._clock()
        while self._saved and (
            len(self._saved) >= self._max or next(iter(self._saved.values()))[0] <= now
        ):
            self._saved.popitem(last=False)
        self._saved[saved.response_id] = (now + self._retention_s, saved)

    async def get(self, response_id: str) -> SavedResponse | None:
        kept = self._saved.get(response_id)
        if kept is None or kept[0] <= self._clock():
            return None
        return kept[1]

    async def delete(self, response_id: str) -> bool:
        return self._saved.pop(response_id, None) is not None
