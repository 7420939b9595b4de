"""The state backend's failure policy for the stores a request can do without.

Deployment cooldowns only steer traffic away from failing deployments: when the shared store
is unreachable every deployment counts as available. Rate limits follow
``state.rate_limits_fail_open``: admit (and say so in the log) or refuse with 503
``service_unavailable``. Idempotency, tasks and
artifacts are never wrapped: a create that cannot be deduplicated must not run (the router turns
``StateUnavailable`` into 503).
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from gateway.contract.errors import GatewayError
from gateway.stores.base import Admission, CooldownStore, Demand, RateLimitStore, StateUnavailable

_log = structlog.get_logger("beatra.state")


class ResilientCooldowns:
    def __init__(self, inner: CooldownStore) -> None:
        self._inner = inner

    async def available(self, deployment_id: str, now: float) -> bool:
        try:
            return await self._inner.available(deployment_id, now)
        except StateUnavailable:
            return True

    async def failure(self, deployment_id: str, now: float, cool_for: float | None) -> bool:
        try:
            return await self._inner.failure(deployment_id, now, cool_for)
        except StateUnavailable:
            return False

    async def success(self, deployment_id: str) -> None:
        try:
            await self._inner.success(deployment_id)
        except StateUnavailable:
            return

    def cooling(self, now: float) -> list[str]:
        return self._inner.cooling(now)


class ResilientRateLimits:
    def __init__(self, inner: RateLimitStore, fail_open: bool) -> None:
        self._inner = inner
        self._fail_open = fail_open

    async def acquire(self, demands: Sequence[Demand], now: float) -> Admission:
        try:
            return await self._inner.acquire(demands, now)
        except StateUnavailable:
            if not self._fail_open:
                raise GatewayError(
                    "service_unavailable",
                    "Rate limits cannot be checked: the shared state store is unreachable.",
                    headers={"retry-after": "1"},
                ) from None
            _log.warning("rate_limits_fail_open")
            return Admission(True, 0.0, [(d.capacity, 0.0) for d in demands])

    async def adjust(self, changes: Sequence[tuple[Demand, float]], now: float) -> None:
        try:
            await self._inner.adjust(changes, now)
        except StateUnavailable:
            return
