"""Token buckets for rate limits in a Redis that replicas share.

Each bucket is one hash, ``bucket:{name}`` under the state prefix, holding ``level`` (tokens
left, negative after an oversized demand) and ``updated`` (the caller's clock when it was last
refilled). Refill, the all-or-nothing decision and the charge of every demand of one request run
in ONE Lua script, so two replicas can never both spend the last token. The script uses the
``now`` the caller passes (the gateway's wall clock, shared by replicas), never Redis' own
clock, so the arithmetic is exactly that of ``memory_limits`` and tests can drive time.

A bucket's key expires once it has had time to refill completely and then sit idle for one more
period (about two periods for an ordinary bucket): a missing bucket is a full one, so forgetting
it changes nothing, and a bucket left in debt by an oversized demand is kept until it is repaid.
Numbers cross the Lua boundary as ``%.17g`` strings: Redis would truncate a Lua number to an
integer, and 17 significant digits round-trip a double exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.stores.base import Admission, Demand
from gateway.stores.redis_base import RedisState
from gateway.stores.resp import Arg, RespScript

# Shared by both scripts: read a bucket and refill it to ``now``. A bucket seen for the first
# time starts full. A ``now`` behind the stored time (another replica's clock a little ahead)
# refills nothing rather than draining the bucket.
_REFILL = """
local function fmt(x) return string.format('%.17g', x) end
local function refilled(key, now, capacity, rate)
  local stored = redis.call('HMGET', key, 'level', 'updated')
  local level, updated = tonumber(stored[1]), tonumber(stored[2])
  if level == nil or updated == nil then
    return capacity, now
  end
  if now > updated then
    level = math.min(level + (now - updated) * rate, capacity)
    updated = now
  end
  return level, updated
end
local function store(key, level, updated, capacity, rate, period)
  redis.call('HSET', key, 'level', fmt(level), 'updated', fmt(updated))
  local idle_s = (capacity - level) / rate + period
  redis.call('PEXPIRE', key, math.max(1, math.ceil(idle_s * 1000)))
end
"""

# KEYS: the bucket of each demand, in order (a bucket may appear twice).
# ARGV: now, then capacity, amount, period for each demand.
# Returns {allowed 0|1, wait, level after the decision for each demand...}.
_ACQUIRE = (
    _REFILL
    + """
local now = tonumber(ARGV[1])
local levels, updates, rates, capacities, periods = {}, {}, {}, {}, {}
local wait = 0
for i, key in ipairs(KEYS) do
  local capacity = tonumber(ARGV[3 * i - 1])
  local amount = tonumber(ARGV[3 * i])
  local period = tonumber(ARGV[3 * i + 1])
  local rate = capacity / period
  if levels[key] == nil then
    levels[key], updates[key] = refilled(key, now, capacity, rate)
    rates[key], capacities[key], periods[key] = rate, capacity, period
  end
  local need = math.min(amount, capacity)
  if levels[key] < need then
    wait = math.max(wait, (need - levels[key]) / rate)
  end
end
local allowed = wait == 0
local reply = {allowed and 1 or 0, fmt(wait)}
for i, key in ipairs(KEYS) do
  if allowed then
    levels[key] = levels[key] - tonumber(ARGV[3 * i])
  end
  reply[#reply + 1] = fmt(levels[key])
end
for key, level in pairs(levels) do
  store(key, level, updates[key], capacities[key], rates[key], periods[key])
end
return reply
"""
)

# KEYS: the bucket of each change, in order. ARGV: now, then capacity, period, delta for each
# change. Refunds never fill past capacity.
_ADJUST = (
    _REFILL
    + """
local now = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local capacity = tonumber(ARGV[3 * i - 1])
  local period = tonumber(ARGV[3 * i])
  local rate = capacity / period
  local level, updated = refilled(key, now, capacity, rate)
  level = math.min(level + tonumber(ARGV[3 * i + 1]), capacity)
  store(key, level, updated, capacity, rate, period)
end
return 1
"""
)


class RedisRateLimiter:
    """``RateLimitStore`` on Redis: the same buckets as ``MemoryRateLimiter``, one per scope,
    shared by every replica; each call is one script round trip (on the lean client)."""

    def __init__(self, state: RedisState) -> None:
        self._state = state
        self._acquire = RespScript(_ACQUIRE)
        self._adjust = RespScript(_ADJUST)

    def _key(self, bucket: str) -> str:
        return self._state.key("bucket", bucket)

    async def acquire(self, demands: Sequence[Demand], now: float) -> Admission:
        keys = [self._key(demand.bucket) for demand in demands]
        args: list[Arg] = [now]
        for demand in demands:
            args += (demand.capacity, demand.amount, demand.period)
        reply = await self._state.script(self._acquire, keys, args)
        states = []
        for demand, raw_level in zip(demands, reply[2:], strict=True):
            level = float(raw_level)
            rate = demand.capacity / demand.period
            states.append((int(level) if level > 0 else 0, (demand.capacity - level) / rate))
        return Admission(bool(reply[0]), float(reply[1]), states)

    async def adjust(self, changes: Sequence[tuple[Demand, float]], now: float) -> None:
        keys = [self._key(demand.bucket) for demand, _ in changes]
        args: list[Arg] = [now]
        for demand, delta in changes:
            args += (demand.capacity, demand.period, delta)
        await self._state.script(self._adjust, keys, args)
