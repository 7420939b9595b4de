"""In-process Idempotency-Key records: bounded in count and in stored bytes.

Entries live for the window (24 h by default); when the cap on entries is reached the oldest
*finished* one is evicted first (a running request's key is never evicted, so two upstream calls
can never happen for one key). Waiters on a running key are woken by an ``asyncio.Event``.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field

from gateway.stores.base import Claim, StoredResponse


@dataclass(slots=True)
class _Entry:
    fingerprint: str
    expires: float
    done: bool = False
    response: StoredResponse | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)


class MemoryIdempotency:
    def __init__(self, window_s: float, max_entries: int) -> None:
        self._window = window_s
        self._max_entries = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def claim(self, scope: str, fingerprint: str, now: float) -> Claim:
        entry = self._entries.get(scope)
        if entry is not None and entry.done and entry.expires <= now:
            del self._entries[scope]
            entry = None
        if entry is None:
            self._make_room(now)
            self._entries[scope] = _Entry(fingerprint, now + self._window)
            return Claim("new")
        if entry.fingerprint != fingerprint:
            return Claim("conflict")
        if not entry.done:
            return Claim("in_progress")
        if entry.response is None:
            return Claim("unreplayable")
        return Claim("replay", entry.response)

    def _make_room(self, now: float) -> None:
        if len(self._entries) < self._max_entries:
            return
        expired = [k for k, e in self._entries.items() if e.done and e.expires <= now]
        for key in expired:
            del self._entries[key]
        while len(self._entries) >= self._max_entries:
            oldest = next((k for k, e in self._entries.items() if e.done), None)
            if oldest is None:
                break  # every entry is running; admit one more rather than lose a marker
            del self._entries[oldest]

    async def wait(self, scope: str) -> None:
        entry = self._entries.get(scope)
        if entry is not None and not entry.done:
            await entry.finished.wait()

    async def complete(self, scope: str, response: StoredResponse | None, now: float) -> None:
        entry = self._entries.get(scope)
        if entry is None:
            return
        entry.done = True
        entry.response = response
        entry.expires = now + self._window
        self._entries.move_to_end(scope)  # age counts from completion
        entry.finished.set()

    async def release(self, scope: str) -> None:
        entry = self._entries.pop(scope, None)
        if entry is not None:
            entry.finished.set()
