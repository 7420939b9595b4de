"""Deployment cooldowns (the circuit breaker) in a Redis that replicas share.

Under the state prefix, ``cool:{deployment}`` is a hash of ``failures`` (consecutive retryable
failures, counted across every replica) and ``until`` (the caller's clock when the rest ends; 0
or absent: the breaker never opened). ``cool-trial:{deployment}`` marks the half-open trial.

The rules are those of ``memory_cooldowns``, plus one that only matters with several callers
at once: once a rest is over, exactly ONE caller gets the trial (``available`` takes the marker
with ``SET NX``, in the same script that checks the rest, so no two callers can both win) and
everybody else keeps seeing the deployment unavailable until the trial reports: a success
closes the breaker, a failure ends the trial (and re-opens the breaker once the threshold is
reached). The marker has a lease (``trial_s``), so a trial whose caller never reports (its
client left, a crashed replica) frees itself.

A success clears the breaker (one ``DEL``), but only when this replica has seen it dirty: when
its own last ``available`` read found no failures and no rest, and it recorded none since, the
success has nothing to clear and costs no round trip. (A failure another replica records in
between is then not reset by this success: with concurrent callers "consecutive" is loose
anyway, and the threshold still counts every failure in a row that no one's success follows.)
These calls run on the lean client (``gateway.stores.resp``): they are made on every request.

``cooling(now)`` is synchronous (the metrics collector calls it), so it is served from a local
cache updated by this instance's own calls: it reflects what THIS replica last saw of each
deployment, not a fresh read of Redis.
"""

from __future__ import annotations

import math

from gateway.stores.redis_base import RedisState
from gateway.stores.resp import RespScript

# KEYS: breaker hash, trial marker. ARGV: now, trial lease in ms.
# Returns {1 if the caller may use the deployment else 0, until, failures so far}.
_AVAILABLE = """
local now = tonumber(ARGV[1])
local stored = redis.call('HMGET', KEYS[1], 'until', 'failures')
local cooled_until = tonumber(stored[1] or '0')
if cooled_until == 0 then
  return {1, '0', tonumber(stored[2] or '0')}
end
local until_text = string.format('%.17g', cooled_until)
if cooled_until > now then
  return {0, until_text}
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, until_text}
end
return {0, until_text}
"""

# KEYS: breaker hash, trial marker. ARGV: now, threshold, cool seconds, cool_for ('' for
# none), retention ms past the rest. Returns the new ``until``.
_FAILURE = """
local now = tonumber(ARGV[1])
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local cooled_until = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
local proposed = nil
if ARGV[4] ~= '' then
  proposed = math.max(cooled_until, now + tonumber(ARGV[4]))
elseif failures >= tonumber(ARGV[2]) then
  -- Stays at the threshold until a success: one failed trial after the rest re-opens it.
  proposed = now + tonumber(ARGV[3])
end
-- Only a real rest is written: with a zero rest the breaker never opens, as in memory.
if proposed ~= nil and proposed > now then
  cooled_until = proposed
  redis.call('HSET', KEYS[1], 'until', string.format('%.17g', cooled_until))
end
redis.call('DEL', KEYS[2])
local rest_ms = math.max(0, cooled_until - now) * 1000
redis.call('PEXPIRE', KEYS[1], math.ceil(rest_ms + tonumber(ARGV[5])))
return string.format('%.17g', cooled_until)
"""

# A breaker nobody touches for this long after its rest is forgotten (e.g. a deployment that
# left the config); consecutive failures further apart than this no longer add up.
_RETENTION_MS = 24 * 3600 * 1000


class RedisCooldowns:
    """``CooldownStore`` on Redis: consecutive-failure breaker per deployment, shared by every
    replica, with a single half-open trial after each rest."""

    def __init__(
        self,
        state: RedisState,
        failures_to_cool: int,
        cool_seconds: float,
        trial_s: float = 10.0,
    ) -> None:
        self._state = state
        self._threshold = failures_to_cool
        self._cool_seconds = cool_seconds
        self._trial_ms = max(1, math.ceil(trial_s * 1000))
        self._available = RespScript(_AVAILABLE)
        self._failure = RespScript(_FAILURE)
        self._seen_until: dict[str, float] = {}  # what this replica last saw; for ``cooling``
        self._seen_clean: set[str] = set()  # last seen with no failure and no rest

    def _keys(self, deployment_id: str) -> list[str]:
        return [
            self._state.key("cool", deployment_id),
            self._state.key("cool-trial", deployment_id),
        ]

    def _remember(self, deployment_id: str, cooled_until: float) -> None:
        if cooled_until > 0:
            self._seen_until[deployment_id] = cooled_until
        else:
            self._seen_until.pop(deployment_id, None)

    async def available(self, deployment_id: str, now: float) -> bool:
        reply = await self._state.script(
            self._available, self._keys(deployment_id), [now, self._trial_ms]
        )
        cooled_until = float(reply[1])
        self._remember(deployment_id, cooled_until)
        if cooled_until == 0 and len(reply) > 2 and reply[2] == 0:
            self._seen_clean.add(deployment_id)
        else:
            self._seen_clean.discard(deployment_id)
        return bool(reply[0])

    async def failure(self, deployment_id: str, now: float, cool_for: float | None) -> bool:
        args = [
            now,
            self._threshold,
            self._cool_seconds,
            "" if cool_for is None else cool_for,
            _RETENTION_MS,
        ]
        self._seen_clean.discard(deployment_id)
        raw_until = await self._state.script(self._failure, self._keys(deployment_id), args)
        cooled_until = float(raw_until)
        self._remember(deployment_id, cooled_until)
        return cooled_until > now

    async def success(self, deployment_id: str) -> None:
        if deployment_id in self._seen_clean:
            return  # nothing to clear (see the module's docstring)
        await self._state.call("DEL", *self._keys(deployment_id))
        self._seen_until.pop(deployment_id, None)
        self._seen_clean.add(deployment_id)

    def cooling(self, now: float) -> list[str]:
        return [name for name, until in self._seen_until.items() if until > now]
