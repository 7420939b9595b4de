"""In-process token buckets for rate limits, on the gateway's (injectable) clock."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.stores.base import Admission, BucketState, Demand


@dataclass(slots=True)
class _Bucket:
    level: float
    updated: float


class MemoryRateLimiter:
    """One bucket per scope (key or model, requests or tokens); memory is bounded by config:
    the number of buckets is at most (keys + models) x 2."""

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}

    def _current(self, demand: Demand, now: float) -> _Bucket:
        bucket = self._buckets.get(demand.bucket)
        if bucket is None:
            bucket = self._buckets[demand.bucket] = _Bucket(float(demand.capacity), now)
        elif now > bucket.updated:
            rate = demand.capacity / demand.period
            bucket.level = min(float(demand.capacity), bucket.level + (now - bucket.updated) * rate)
            bucket.updated = now
        return bucket

    async def acquire(self, demands: Sequence[Demand], now: float) -> Admission:
        buckets = [self._current(d, now) for d in demands]
        wait = 0.0
        for demand, bucket in zip(demands, buckets, strict=True):
            need = min(demand.amount, float(demand.capacity))
            if bucket.level < need:
                wait = max(wait, (need - bucket.level) * demand.period / demand.capacity)
        allowed = wait == 0.0
        if allowed:
            for demand, bucket in zip(demands, buckets, strict=True):
                bucket.level -= demand.amount
        states = tuple(_state(d, b) for d, b in zip(demands, buckets, strict=True))
        return Admission(allowed, wait, states)

    async def adjust(self, demand: Demand, delta: float, now: float) -> None:
        bucket = self._current(demand, now)
        bucket.level = min(float(demand.capacity), bucket.level + delta)


def _state(demand: Demand, bucket: _Bucket) -> BucketState:
    missing = demand.capacity - bucket.level
    return BucketState(
        remaining=max(0, math.floor(bucket.level)),
        reset_s=max(0.0, missing * demand.period / demand.capacity),
    )
