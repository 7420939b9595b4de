"""The shared Redis connection of the ``redis`` state backend, and its failure policy.

Every Redis store goes through one ``RedisState``: one connection pool, one key prefix, and one
rule for failure: a call that cannot complete within ``state.timeout_s`` (Redis down, slow or
unreachable) raises ``StateUnavailable``, which the gateway turns into its documented policy
(503 ``service_unavailable`` for idempotent creates and tasks, fail-open or fail-closed for rate
limits). redis-py reconnects on the next call, with a short backoff between its own retries, so
nothing here hangs past the timeout and nothing needs restarting when Redis comes back.

Times stored in Redis are the gateway's wall clock (Unix seconds), passed in by the caller, so
every replica means the same instant by the same number.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from gateway.stores.base import StateUnavailable

T = TypeVar("T")


class RedisState:
    def __init__(self, url: str, prefix: str, timeout_s: float) -> None:
        self.prefix = prefix
        self.timeout_s = timeout_s
        self.client: redis.Redis = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(ExponentialBackoff(cap=timeout_s, base=0.01), retries=1),
            health_check_interval=30,
            decode_responses=False,
        )

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def run(self, call: Awaitable[T]) -> T:
        """Await one Redis call; any Redis failure or a timeout becomes ``StateUnavailable``."""
        try:
            async with asyncio.timeout(self.timeout_s * 4):
                return await call
        except (RedisError, OSError, TimeoutError) as exc:
            raise StateUnavailable(str(exc) or type(exc).__name__) from exc

    def script(self, source: str) -> Any:
        """A Lua script registered once and run by its sha (EVALSHA, EVAL on a cache miss)."""
        return self.client.register_script(source)

    async def ping(self) -> bool:
        try:
            return bool(await self.run(self.client.ping()))
        except StateUnavailable:
            return False

    async def close(self) -> None:
        await self.client.aclose()
