"""In-process Idempotency-Key records, bounded in count and in stored bytes.

Running keys and finished keys are kept apart. Finished ones sit in completion order, which is
also expiry order (the window is the same for all), so expiry and eviction pop from the front in
O(1). A running key is never evicted: that is what guarantees one upstream call per key. When
the caps on entries or total stored bytes are reached, the oldest finished entry goes first.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from gateway.stores.base import Claim, StoredResponse


class _Entry:
    __slots__ = ("expires", "fingerprint", "finished", "response", "size")

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        self.expires = 0.0
        self.response: StoredResponse | None = None
        self.size = 0
        self.finished: asyncio.Event | None = None  # created only when somebody waits

    def wake(self) -> None:
        if self.finished is not None:
            self.finished.set()


class MemoryIdempotency:
    def __init__(self, window_s: float, max_entries: int, max_total_bytes: int) -> None:
        self._window = window_s
        self._max_entries = max_entries
        self._max_bytes = max_total_bytes
        self._running: dict[str, _Entry] = {}
        self._finished: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._running) + len(self._finished)

    @property
    def stored_bytes(self) -> int:
        return self._bytes

    async def claim(self, scope: str, fingerprint: str, now: float) -> Claim:
        running = self._running.get(scope)
        if running is not None:
            return Claim("in_progress" if running.fingerprint == fingerprint else "conflict")
        self._expire(now)
        entry = self._finished.get(scope)
        if entry is not None:
            if entry.fingerprint != fingerprint:
                return Claim("conflict")
            if entry.response is None:
                return Claim("unreplayable")
            return Claim("replay", entry.response)
        while self._finished and len(self) >= self._max_entries:
            self._drop_oldest()
        self._running[scope] = _Entry(fingerprint)
        return Claim("new")

    def _expire(self, now: float) -> None:
        while self._finished:
            oldest = next(iter(self._finished.values()))
            if oldest.expires > now:
                return
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        _, entry = self._finished.popitem(last=False)
        self._bytes -= entry.size

    async def wait(self, scope: str) -> None:
        entry = self._running.get(scope)
        if entry is None:
            return
        if entry.finished is None:
            entry.finished = asyncio.Event()
        await entry.finished.wait()

    async def complete(self, scope: str, response: StoredResponse | None, now: float) -> None:
        entry = self._running.pop(scope, None)
        if entry is None:
            return
        entry.response = response
        entry.expires = now + self._window
        entry.size = len(response.body) if response is not None else 0
        self._finished[scope] = entry
        self._bytes += entry.size
        while self._bytes > self._max_bytes and len(self._finished) > 1:
            self._drop_oldest()
        entry.wake()

    async def release(self, scope: str) -> None:
        entry = self._running.pop(scope, None)
        if entry is not None:
            entry.wake()
