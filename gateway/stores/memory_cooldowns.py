"""In-process deployment cooldowns: the circuit breaker of the default, one-replica gateway.

The rules are those of ``redis_cooldowns``: after ``failures_to_cool`` consecutive failures the
deployment rests; once the rest is over exactly ONE caller gets the half-open trial and everyone
else keeps seeing the deployment unavailable until the trial reports (a success closes the
breaker, a failure re-opens it) or its lease (``trial_s``, on the caller's clock) runs out, so a
trial whose caller never reports (its client left) frees itself.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class _Breaker:
    failures: int = 0
    until: float = 0.0
    trial_until: float = 0.0  # while a half-open trial is out: when its lease ends


class MemoryCooldowns:
    """Consecutive-failure breaker per deployment, with one half-open trial after each rest."""

    def __init__(self, failures_to_cool: int, cool_seconds: float, trial_s: float = 10.0) -> None:
        self._threshold = failures_to_cool
        self._cool_seconds = cool_seconds
        self._trial_s = trial_s
        self._breakers: dict[str, _Breaker] = {}

    async def available(self, deployment_id: str, now: float) -> bool:
        breaker = self._breakers.get(deployment_id)
        if breaker is None or breaker.until == 0.0:
            return True
        if breaker.until > now or breaker.trial_until > now:
            return False
        breaker.trial_until = now + self._trial_s  # this caller is the trial
        return True

    async def failure(self, deployment_id: str, now: float, cool_for: float | None) -> bool:
        breaker = self._breakers.setdefault(deployment_id, _Breaker())
        breaker.failures += 1
        breaker.trial_until = 0.0
        proposed = None
        if cool_for is not None:
            proposed = max(breaker.until, now + cool_for)
        elif breaker.failures >= self._threshold:
            # Stays at the threshold until a success: one failed trial after the rest re-opens it.
            proposed = now + self._cool_seconds
        if proposed is not None and proposed > now:  # a zero rest never opens the breaker
            breaker.until = proposed
        return breaker.until > now

    async def success(self, deployment_id: str) -> None:
        self._breakers.pop(deployment_id, None)

    def cooling(self, now: float) -> list[str]:
        return [name for name, breaker in self._breakers.items() if breaker.until > now]
