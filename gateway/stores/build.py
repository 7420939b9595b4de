"""The state backend chosen by ``[state] backend``: every store, built once for the app.

``memory`` keeps state in this process (the default). ``redis`` shares it between replicas
through one Redis; the stores then run on the wall clock, which every replica shares, and the
ones a request can do without are wrapped in the failure policy of ``stores/resilient.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.config.settings import Settings
from gateway.stores.base import (
    ArtifactIndex,
    CooldownStore,
    IdempotencyStore,
    RateLimitStore,
    ResponseStore,
    TaskStore,
)
from gateway.stores.memory_artifacts import MemoryArtifacts
from gateway.stores.memory_cooldowns import MemoryCooldowns
from gateway.stores.memory_idempotency import MemoryIdempotency
from gateway.stores.memory_limits import MemoryRateLimiter
from gateway.stores.memory_responses import MemoryResponses
from gateway.stores.memory_tasks import MemoryTasks
from gateway.stores.resilient import ResilientCooldowns, ResilientRateLimits


async def _nothing() -> None:
    return None


@dataclass
class Stores:
    cooldowns: CooldownStore
    rate_limits: RateLimitStore
    idempotency: IdempotencyStore
    tasks: TaskStore
    artifacts: ArtifactIndex
    responses: ResponseStore
    clock: Callable[[], float]  # the clock the stores' times are on
    shared: bool  # other replicas see the same state
    close: Callable[[], Awaitable[None]] = _nothing


def build_stores(
    settings: Settings, clock: Callable[[], float], wall_clock: Callable[[], float]
) -> Stores:
    relay = settings.relay
    idem = settings.idempotency
    if settings.state.backend == "memory":
        return Stores(
            cooldowns=MemoryCooldowns(relay.cooldown_failures, relay.cooldown_s),
            rate_limits=MemoryRateLimiter(),
            idempotency=MemoryIdempotency(idem.window_s, idem.max_entries, idem.max_total_bytes),
            tasks=MemoryTasks(),
            artifacts=MemoryArtifacts(),
            responses=MemoryResponses(
                settings.responses.retention_s, settings.responses.max_stored, clock
            ),
            clock=clock,
            shared=False,
        )
    # Imported here: the redis client is an optional extra.
    from gateway.stores.redis_artifacts import RedisArtifacts
    from gateway.stores.redis_base import RedisState
    from gateway.stores.redis_cooldowns import RedisCooldowns
    from gateway.stores.redis_idempotency import RedisIdempotency
    from gateway.stores.redis_limits import RedisRateLimiter
    from gateway.stores.redis_responses import RedisResponses
    from gateway.stores.redis_tasks import RedisTasks

    state_settings = settings.state
    assert state_settings.redis_url is not None  # checked when the settings were loaded
    state = RedisState(
        state_settings.redis_url, state_settings.key_prefix, state_settings.timeout_s
    )
    return Stores(
        cooldowns=ResilientCooldowns(
            RedisCooldowns(state, relay.cooldown_failures, relay.cooldown_s)
        ),
        rate_limits=ResilientRateLimits(
            RedisRateLimiter(state), state_settings.rate_limits_fail_open
        ),
        idempotency=RedisIdempotency(state, idem.window_s, idem.max_entries, idem.max_total_bytes),
        tasks=RedisTasks(state, settings.tasks.task_retention_s),
        artifacts=RedisArtifacts(state),
        responses=RedisResponses(state, settings.responses.retention_s),
        clock=wall_clock,
        shared=True,
        close=state.close,
    )
