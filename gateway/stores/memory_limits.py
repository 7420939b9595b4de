"""In-process token buckets for rate limits, on the gateway's (injectable) clock."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.stores.base import Admission, Demand


class _Bucket:
    __slots__ = ("level", "rate", "updated")

    def __init__(self, level: float, rate: float, updated: float) -> None:
        self.level = level
        self.rate = rate  # units per second
        self.updated = updated


class MemoryRateLimiter:
    """One bucket per scope (key or model, requests or tokens); memory is bounded by config:
    the number of buckets is at most (keys + models) x 2. Every limited request runs through
    ``acquire``, so it is written as one pass with no helper calls."""

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}

    def _refilled(self, demand: Demand, now: float) -> _Bucket:
        bucket = self._buckets.get(demand.bucket)
        if bucket is None:
            rate = demand.capacity / demand.period
            bucket = self._buckets[demand.bucket] = _Bucket(float(demand.capacity), rate, now)
        elif now > bucket.updated:
            level = bucket.level + (now - bucket.updated) * bucket.rate
            bucket.level = level if level < demand.capacity else float(demand.capacity)
            bucket.updated = now
        return bucket

    async def acquire(self, demands: Sequence[Demand], now: float) -> Admission:
        buckets = [self._refilled(demand, now) for demand in demands]
        wait = 0.0
        for demand, bucket in zip(demands, buckets, strict=True):
            need = demand.amount if demand.amount < demand.capacity else demand.capacity
            if bucket.level < need:
                shortfall = (need - bucket.level) / bucket.rate
                wait = max(wait, shortfall)
        allowed = wait == 0.0
        states = []
        for demand, bucket in zip(demands, buckets, strict=True):
            if allowed:
                bucket.level -= demand.amount
            level = bucket.level
            states.append((int(level) if level > 0 else 0, (demand.capacity - level) / bucket.rate))
        return Admission(allowed, wait, states)

    async def adjust(self, changes: Sequence[tuple[Demand, float]], now: float) -> None:
        for demand, delta in changes:
            bucket = self._refilled(demand, now)
            level = bucket.level + delta
            bucket.level = level if level < demand.capacity else float(demand.capacity)
