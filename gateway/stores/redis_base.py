"""The shared Redis connection of the ``redis`` state backend, and its failure policy.

Every Redis store goes through one ``RedisState``: one connection pool, one key prefix, and one
rule for failure: a call that cannot complete within ``state.timeout_s`` (Redis down, slow or
unreachable) raises ``StateUnavailable``, which the gateway turns into its documented policy
(503 ``service_unavailable`` for idempotent creates and tasks, fail-open or fail-closed for rate
limits).

One failure marks the store down: until a background probe gets an answer again (a PING every
``timeout_s`` to ``2 * timeout_s``, jittered so replicas do not probe in step), every call
raises ``StateUnavailable`` at once instead of waiting out its own timeout. A request makes
several Redis calls; without this, each would wait on a hung Redis and one request would take
several timeouts. redis-py reconnects on the probe's call, so nothing needs restarting when
Redis comes back.

The calls every request makes (rate limits, cooldowns) go through ``script`` on the lean
pipelined client of ``gateway.stores.resp``; the rest (idempotency, tasks, artifacts, the probe)
through redis-py's ``client``. Both share the failure policy above.

Times stored in Redis are the gateway's wall clock (Unix seconds), passed in by the caller, so
every replica means the same instant by the same number.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

import redis.asyncio as redis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.stores.base import StateUnavailable
from gateway.stores.resp import Arg, RespClient, RespError, RespScript

T = TypeVar("T")

_log = structlog.get_logger("beatra.state")


class RedisState:
    def __init__(self, url: str, prefix: str, timeout_s: float) -> None:
        self.prefix = prefix
        self.timeout_s = timeout_s
        self._probe: asyncio.Task[None] | None = None  # set while the store is down
        self._background: set[asyncio.Task[None]] = set()  # the stores' own loops, see ``spawn``
        self._when_up: list[Callable[[], None]] = []
        self.client: redis.Redis = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(ExponentialBackoff(cap=timeout_s, base=0.01), retries=1),
            health_check_interval=30,
            decode_responses=False,
        )
        self.lean = RespClient(url, timeout_s)

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    @property
    def down(self) -> bool:
        """Whether the last call failed and the probe has not had an answer since."""
        return self._probe is not None

    async def run(self, call: Awaitable[T]) -> T:
        """Await one Redis call; any Redis failure or a timeout becomes ``StateUnavailable``,
        and while the store is down the call is not made at all."""
        if self._probe is not None:
            if inspect.iscoroutine(call):
                call.close()  # never started: close it so it is not reported as un-awaited
            raise StateUnavailable("the state store is down; a background probe checks it")
        try:
            async with asyncio.timeout(self.timeout_s):
                return await call
        except (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError) as exc:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                # The caller was cancelled and the client reported it as a failed call: the
                # store is not down, and the cancellation must go on.
                raise asyncio.CancelledError from exc
            self.mark_down()
            raise StateUnavailable(str(exc) or type(exc).__name__) from exc
        except RedisError as exc:  # an answer, if a wrong one: the store itself is up
            raise StateUnavailable(str(exc) or type(exc).__name__) from exc

    def script(
        self, script: RespScript, keys: Sequence[str], args: Sequence[Arg]
    ) -> Awaitable[Any]:
        """Run a Lua script on the lean client, under the same failure policy as ``run``
        (the client enforces ``timeout_s`` itself: no timer per call)."""
        return self._lean(self.lean.script(script, keys, args))

    def call(self, *args: Arg) -> Awaitable[Any]:
        """One command on the lean client, under the same failure policy as ``run``."""
        return self._lean(self.lean.call(*args))

    async def _lean(self, call: Coroutine[Any, Any, Any]) -> Any:
        if self._probe is not None:
            call.close()  # never started: close it so it is not reported as un-awaited
            raise StateUnavailable("the state store is down; a background probe checks it")
        try:
            return await call
        except (OSError, TimeoutError) as exc:  # ConnectionError is an OSError
            self.mark_down()
            raise StateUnavailable(str(exc) or type(exc).__name__) from exc
        except RespError as exc:
            raise StateUnavailable(str(exc)) from exc

    def mark_down(self) -> None:
        """Fail fast from now on, until the background probe gets an answer."""
        if self._probe is None:
            _log.warning("state_store_down", probe_every_s=self.timeout_s)
            self._probe = asyncio.get_running_loop().create_task(self._probe_until_up())

    async def _probe_until_up(self) -> None:
        while True:
            await asyncio.sleep(self.timeout_s * (1 + random.random()))
            try:
                async with asyncio.timeout(self.timeout_s):
                    await self.client.ping()
            except (RedisError, OSError, TimeoutError):
                continue
            self._probe = None
            _log.info("state_store_up")
            for call in self._when_up:
                call()
            return

    def when_up(self, call: Callable[[], None]) -> None:
        """Call ``call`` (synchronously, from the probe) each time the store is back up."""
        self._when_up.append(call)

    def spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a store's background loop; ``close`` cancels whatever is still running."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def register(self, source: str) -> Any:
        """A Lua script for redis-py's client, registered once and run by its sha (EVALSHA,
        EVAL on a cache miss)."""
        return self.client.register_script(source)

    async def ping(self) -> bool:
        try:
            return bool(await self.run(self.client.ping()))
        except StateUnavailable:
            return False

    async def close(self) -> None:
        probe, self._probe = self._probe, None
        for task in [*self._background, *([probe] if probe is not None else [])]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.lean.close()
        await self.client.aclose()
