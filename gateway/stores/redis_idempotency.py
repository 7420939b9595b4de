"""Idempotency-Key records in a Redis that replicas share, and the wake-up of waiting duplicates.

Under the state prefix, ``idem:{scope}`` is a hash: ``fp`` (the request's fingerprint), ``done``
(``0`` while the first request runs, ``1`` once it completed), ``owner`` (a token of the claim
that created it), then ``expires`` (the caller's clock when the window ends) and, when the
answer was kept, ``status``, ``type`` and ``body``. Claim, complete and release are each one Lua
script, so two replicas can never both own a key. The instance that claimed a key remembers its
token, and ``complete``/``release`` act only on a marker holding that token: a request that
outlived its lease can never overwrite or free the marker of the request that claimed the key
after it.

Bounds: a running key's marker has its own lease (``in_flight_ttl_s``), so the key of a replica
that crashed mid-request frees itself; a completed key expires after ``window_s`` (by Redis' TTL,
and on the caller's clock as in ``memory_idempotency``). ``max_entries`` and ``max_total_bytes``
are accepted for the same constructor shape but not enforced: here the window is the bound, and
the server's own ``maxmemory`` is the operator's cap (the caller already declines to keep any
answer larger than its per-response limit).

Waiting: ``complete`` and ``release`` PUBLISH on ``idem-done:{scope}`` inside their scripts, and
``wait`` SUBSCRIBEs there, so a duplicate waiting on another replica wakes as soon as the first
request ends, without polling. It subscribes BEFORE it looks at the key (a request that ends in
between is then either seen as ended or heard), and re-checks the key every ``poll_s`` in case a
message is lost (a reconnect of the subscriber, an expired lease, which publishes nothing).
Each waiting duplicate holds one pub/sub connection while it waits.
"""

from __future__ import annotations

import contextlib
import math
import secrets

from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from gateway.stores.base import Claim, StateUnavailable, StoredResponse
from gateway.stores.redis_base import RedisState

# KEYS: entry. ARGV: fingerprint, now, in-flight lease ms, owner token.
_CLAIM = """
local entry = redis.call('HMGET', KEYS[1], 'fp', 'done', 'expires', 'status', 'type', 'body')
local fingerprint = entry[1]
if fingerprint and entry[2] == '1' and tonumber(entry[3]) <= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])  -- past its window on the gateway's clock: as good as gone
  fingerprint = false
end
if not fingerprint then
  redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'done', '0', 'owner', ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'new'}
end
if fingerprint ~= ARGV[1] then
  return {'conflict'}
end
if entry[2] ~= '1' then
  return {'in_progress'}
end
if not entry[4] then
  return {'unreplayable'}
end
return {'replay', entry[4], entry[5], entry[6]}
"""

# KEYS: entry. ARGV: channel, owner token, expires, window ms, then status, type, body when kept.
_COMPLETE = """
local marker = redis.call('HMGET', KEYS[1], 'done', 'owner')
if marker[1] ~= '0' or marker[2] ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'done', '1', 'expires', ARGV[3])
if #ARGV > 4 then
  redis.call('HSET', KEYS[1], 'status', ARGV[5], 'type', ARGV[6], 'body', ARGV[7])
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', ARGV[1], 'completed')
return 1
"""

# KEYS: entry. ARGV: channel, owner token. Only a running key is forgotten, never a completed one.
_RELEASE = """
local marker = redis.call('HMGET', KEYS[1], 'done', 'owner')
if marker[1] ~= '0' or marker[2] ~= ARGV[2] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], 'released')
return 1
"""


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class RedisIdempotency:
    """``IdempotencyStore`` on Redis (see the module docstring for keys, bounds and waiting)."""

    def __init__(
        self,
        state: RedisState,
        window_s: float,
        max_entries: int,
        max_total_bytes: int,
        *,
        in_flight_ttl_s: float = 600.0,
        poll_s: float = 0.5,
    ) -> None:
        del max_entries, max_total_bytes  # bounded by the window instead (module docstring)
        self._state = state
        self._window_s = window_s
        self._in_flight_ms = _ms(in_flight_ttl_s)
        self._poll_s = poll_s
        self._claim = state.script(_CLAIM)
        self._complete = state.script(_COMPLETE)
        self._release = state.script(_RELEASE)
        # The token of each key this instance claimed and has not yet completed or released.
        self._tokens: dict[str, str] = {}

    def _entry(self, scope: str) -> str:
        return self._state.key("idem", scope)

    def _channel(self, scope: str) -> str:
        return self._state.key("idem-done", scope)

    async def claim(self, scope: str, fingerprint: str, now: float) -> Claim:
        token = secrets.token_hex(8)
        args = [fingerprint, now, self._in_flight_ms, token]
        reply = await self._state.run(self._claim(keys=[self._entry(scope)], args=args))
        state = reply[0].decode()
        if state == "new":
            self._tokens[scope] = token
        if state != "replay":
            return Claim(state)
        return Claim(state, StoredResponse(int(reply[1]), bytes(reply[2]), bytes(reply[3])))

    async def complete(self, scope: str, response: StoredResponse | None, now: float) -> None:
        # Taken out first: the caller settles a key once, even when this call fails.
        token = self._tokens.pop(scope, "")
        args: list[str | float | int | bytes] = [
            self._channel(scope),
            token,
            now + self._window_s,
            _ms(self._window_s),
        ]
        if response is not None:
            args += (response.status, response.content_type, response.body)
        await self._state.run(self._complete(keys=[self._entry(scope)], args=args))

    async def release(self, scope: str) -> None:
        args = [self._channel(scope), self._tokens.pop(scope, "")]
        await self._state.run(self._release(keys=[self._entry(scope)], args=args))

    async def wait(self, scope: str) -> None:
        pubsub = self._state.client.pubsub()
        try:
            await self._state.run(self._subscribe(pubsub, self._channel(scope)))
            while await self._running(scope):
                # Not under ``state.run``: this read is meant to last up to ``poll_s``.
                try:
                    heard = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=self._poll_s
                    )
                except (RedisError, OSError) as exc:
                    raise StateUnavailable(str(exc) or type(exc).__name__) from exc
                if heard is not None and heard["type"] in ("message", b"message"):
                    return
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()

    async def _subscribe(self, pubsub: PubSub, channel: str) -> None:
        """Subscribe and wait for the server's confirmation: only then can no message be lost."""
        await pubsub.subscribe(channel)
        while True:
            confirmation = await pubsub.get_message(timeout=self._state.timeout_s)
            if confirmation is not None and confirmation["type"] in ("subscribe", b"subscribe"):
                return

    async def _running(self, scope: str) -> bool:
        done = await self._state.run(self._state.client.hget(self._entry(scope), "done"))
        return done == b"0"
