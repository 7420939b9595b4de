"""In-process deployment cooldowns: the circuit breaker of the default, one-replica gateway."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class _Breaker:
    failures: int = 0
    until: float = 0.0


class MemoryCooldowns:
    """Consecutive-failure breaker per deployment, with half-open retrial after the rest."""

    def __init__(self, failures_to_cool: int, cool_seconds: float) -> None:
        self._threshold = failures_to_cool
        self._cool_seconds = cool_seconds
        self._breakers: dict[str, _Breaker] = {}

    async def available(self, deployment_id: str, now: float) -> bool:
        breaker = self._breakers.get(deployment_id)
        return breaker is None or breaker.until <= now

    async def failure(self, deployment_id: str, now: float, cool_for: float | None) -> bool:
        breaker = self._breakers.setdefault(deployment_id, _Breaker())
        breaker.failures += 1
        if cool_for is not None:
            breaker.until = max(breaker.until, now + cool_for)
        elif breaker.failures >= self._threshold:
            # Stays at the threshold until a success: one failed trial after the rest re-opens it.
            breaker.until = now + self._cool_seconds
        return breaker.until > now

    async def success(self, deployment_id: str) -> None:
        self._breakers.pop(deployment_id, None)

    def cooling(self, now: float) -> list[str]:
        return [name for name, breaker in self._breakers.items() if breaker.until > now]
