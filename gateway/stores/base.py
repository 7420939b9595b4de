"""The protocols of the gateway's shared state, implemented once per backend."""

from __future__ import annotations

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
