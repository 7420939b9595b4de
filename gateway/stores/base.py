"""The protocols of the gateway's shared state, implemented once per backend.

``memory`` implements them for one process; a shared backend implements the same protocols so
that several replicas behave as one gateway. Times are seconds on the gateway's clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class CooldownStore(Protocol):
    """The circuit breaker of deployments: which ones are resting after failures."""

    async def available(self, deployment_id: str, now: float) -> bool:
        """False while the deployment is cooling down."""

    async def failure(self, deployment_id: str, now: float, cool_for: float | None) -> bool:
        """Record a retryable failure; ``cool_for`` cools at once (e.g. a long Retry-After).

        Returns True when the deployment is now cooling down.
        """

    async def success(self, deployment_id: str) -> None:
        """A success closes the breaker again."""

    def cooling(self, now: float) -> list[str]:
        """The deployments cooling down at ``now`` (for metrics)."""


@dataclass(slots=True)
class Demand:
    """Take ``amount`` from the bucket ``bucket`` holding ``capacity`` per ``period`` seconds.

    (Plain, not frozen, slotted dataclasses here: they are built on every limited request and a
    frozen one costs three times as much to create.)
    """

    bucket: str
    capacity: int
    amount: float
    period: float = 60.0


@dataclass(slots=True)
class Admission:
    allowed: bool
    retry_after_s: float  # when refused: seconds until every demand would be met
    # One (remaining whole units, seconds until full again) per demand, after the decision.
    states: list[tuple[int, float]]


class RateLimitStore(Protocol):
    """Token buckets that refill continuously; all demands of one call are met or none."""

    async def acquire(self, demands: Sequence[Demand], now: float) -> Admission:
        """Take every demand, or nothing and say how long until they would all fit.

        A demand larger than its bucket's capacity is admitted when the bucket is full (the
        bucket then goes negative): a single oversized request overshoots by itself at most.
        """

    async def adjust(self, demand: Demand, delta: float, now: float) -> None:
        """Give back (``delta`` > 0) or take more (< 0) once the real cost is known."""


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A finished response as it is replayed: status, content type, exact body bytes."""

    status: int
    content_type: bytes
    body: bytes


@dataclass(frozen=True, slots=True)
class Claim:
    """What ``IdempotencyStore.claim`` found for a key.

    ``state`` is ``new`` (the caller owns the key now and must ``complete`` or ``release``
    it), ``replay`` (``response`` is set), ``conflict`` (another body used this key),
    ``in_progress`` (still running elsewhere) or ``unreplayable`` (completed, too large to
    have been kept).
    """

    state: str
    response: StoredResponse | None = None


class IdempotencyStore(Protocol):
    async def claim(self, scope: str, fingerprint: str, now: float) -> Claim:
        """Take the key for a new request, or report why not."""

    async def wait(self, scope: str) -> None:
        """Return when the key's in-progress request ends (callers bound it with a timeout)."""

    async def complete(self, scope: str, response: StoredResponse | None, now: float) -> None:
        """Store the outcome (``None``: completed but too large to keep) for the window."""

    async def release(self, scope: str) -> None:
        """Forget an in-progress key (a retryable failure): a retry really runs again."""
