"""Idempotency-Key records in a Redis that replicas share, and what survives Redis failing.

Under the state prefix, ``idem:{scope}`` is a hash: ``fp`` (the request's fingerprint), ``done``
(``0`` while the first request runs, ``1`` once it completed), ``owner`` (a token of the claim
that created it), then ``expires`` (the caller's clock when the window ends) and, when the
answer was kept, ``status``, ``type`` and ``body``. Claim, complete and release are each one Lua
script, so two replicas can never both own a key. The instance that claimed a key remembers its
token, and ``complete``/``release`` act only on a marker holding that token (or on no marker at
all): a request that outlived its lease never overwrites or frees the claim of the request that
claimed the key after it.

Claims are short leases (``lease_s``, 5 s). One background loop per instance renews every
claim it holds each ``lease_s / 5`` in one script call, so the key of a replica that died or lost
Redis frees itself within ``lease_s``, and a duplicate waiting on it then runs. The same call
re-creates a held claim that is missing (Redis came back empty after a restart), so a retry
that arrives after that waits for the running request instead of calling the upstream again.

An answer is never lost to a Redis outage: when ``complete`` cannot reach Redis, the answer
stays in a local write-back buffer (bounded by ``max_entries`` and ``max_total_bytes``, oldest
dropped first, with a warning), the caller's client gets it as if nothing happened, duplicates
that reach this instance are replayed from the buffer, and the loop writes it to Redis as soon
as Redis answers (at once when the state's probe sees it back up).

Bounds: a completed key expires after ``window_s`` (by Redis' TTL, and on the caller's clock as
in ``memory_idempotency``); the server's own ``maxmemory`` is the operator's cap (the caller
already declines to keep any answer larger than its per-response limit).

Waiting: ``complete`` and ``release`` PUBLISH on ``idem-done:{scope}`` inside their scripts, and
``wait`` SUBSCRIBEs there, so a duplicate waiting on another replica wakes as soon as the first
request ends, without polling. It subscribes BEFORE it looks at the key (a request that ends in
between is then either seen as ended or heard), and re-checks the key every ``poll_s`` in case a
message is lost (a reconnect of the subscriber, an expired lease, which publishes nothing).
Each waiting duplicate holds one pub/sub connection while it waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
from collections import OrderedDict
from dataclasses import dataclass

import structlog
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from gateway.stores.base import Claim, StateUnavailable, StoredResponse
from gateway.stores.redis_base import RedisState

_log = structlog.get_logger("beatra.state")

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

# KEYS: entry. ARGV: channel, owner token, expires, window ms, fingerprint, then status, type,
# body when kept. A missing marker is written too: the claim's lease ran out while Redis was
# unreachable, or Redis restarted empty, and nobody claimed the key since.
_COMPLETE = """
local marker = redis.call('HMGET', KEYS[1], 'done', 'owner')
if marker[1] and (marker[1] ~= '0' or marker[2] ~= ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], 'fp', ARGV[5], 'done', '1', 'owner', ARGV[2], 'expires', ARGV[3])
if #ARGV > 5 then
  redis.call('HSET', KEYS[1], 'status', ARGV[6], 'type', ARGV[7], 'body', ARGV[8])
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', ARGV[1], 'completed')
return 1
"""

# KEYS: the entries of every held claim. ARGV: lease ms, then a token and a fingerprint per key.
# Extends each claim still held by its token; re-creates one that is gone.
_RENEW = """
for index, entry in ipairs(KEYS) do
  local token = ARGV[index * 2]
  local marker = redis.call('HMGET', entry, 'done', 'owner')
  if not marker[1] then
    redis.call('HSET', entry, 'fp', ARGV[index * 2 + 1], 'done', '0', 'owner', token)
    redis.call('PEXPIRE', entry, ARGV[1])
  elseif marker[1] == '0' and marker[2] == token then
    redis.call('PEXPIRE', entry, ARGV[1])
  end
end
return #KEYS
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


LEASE_S = 5.0  # a held claim's lease; renewed RENEWALS_PER_LEASE times within it
RENEWALS_PER_LEASE = 5


@dataclass(slots=True)
class _Held:
    """A claim this instance holds: the token that proves it, the fingerprint to re-create it."""

    token: str
    fingerprint: str


@dataclass(slots=True)
class _Unwritten:
    """A finished answer Redis could not take yet."""

    held: _Held
    response: StoredResponse | None
    expires: float

    @property
    def size(self) -> int:
        return len(self.response.body) if self.response is not None else 0


class RedisIdempotency:
    """``IdempotencyStore`` on Redis (see the module docstring for keys, leases, the write-back
    buffer and waiting)."""

    def __init__(
        self,
        state: RedisState,
        window_s: float,
        max_entries: int,
        max_total_bytes: int,
        *,
        lease_s: float = LEASE_S,
        poll_s: float = 0.5,
    ) -> None:
        self._state = state
        self._window_s = window_s
        self._max_unwritten = max(1, max_entries)
        self._max_unwritten_bytes = max_total_bytes
        self._lease_ms = _ms(lease_s)
        self._renew_every_s = lease_s / RENEWALS_PER_LEASE
        self._poll_s = poll_s
        self._claim = state.register(_CLAIM)
        self._complete = state.register(_COMPLETE)
        self._release = state.register(_RELEASE)
        self._renew = state.register(_RENEW)
        self._held: dict[str, _Held] = {}  # claimed here and not yet completed or released
        self._unwritten: OrderedDict[str, _Unwritten] = OrderedDict()
        self._unwritten_bytes = 0
        self._keeper: asyncio.Task[None] | None = None
        self._closed = False  # closed: nothing is renewed or written back any more
        self._nudge = asyncio.Event()  # wakes the keeper early: Redis is back
        state.when_up(self._nudge.set)

    def _entry(self, scope: str) -> str:
        return self._state.key("idem", scope)

    def _channel(self, scope: str) -> str:
        return self._state.key("idem-done", scope)

    async def claim(self, scope: str, fingerprint: str, now: float) -> Claim:
        unwritten = self._unwritten.get(scope)
        if unwritten is not None:  # answered here while Redis was away
            if unwritten.held.fingerprint != fingerprint:
                return Claim("conflict")
            if unwritten.response is None:
                return Claim("unreplayable")
            return Claim("replay", unwritten.response)
        token = secrets.token_hex(8)
        args = [fingerprint, now, self._lease_ms, token]
        reply = await self._state.run(self._claim(keys=[self._entry(scope)], args=args))
        state = reply[0].decode()
        if state == "new":
            self._held[scope] = _Held(token, fingerprint)
            self._keep()
        if state != "replay":
            return Claim(state)
        return Claim(state, StoredResponse(int(reply[1]), bytes(reply[2]), bytes(reply[3])))

    async def complete(self, scope: str, response: StoredResponse | None, now: float) -> None:
        # Taken out first: the caller settles a key once, even when this call fails.
        held = self._held.pop(scope, None)
        if held is None:
            return
        unwritten = _Unwritten(held, response, now + self._window_s)
        try:
            await self._write(scope, unwritten)
        except StateUnavailable:
            self._buffer(scope, unwritten)

    async def _write(self, scope: str, unwritten: _Unwritten) -> None:
        args: list[str | float | int | bytes] = [
            self._channel(scope),
            unwritten.held.token,
            unwritten.expires,
            _ms(self._window_s),
            unwritten.held.fingerprint,
        ]
        if unwritten.response is not None:
            response = unwritten.response
            args += (response.status, response.content_type, response.body)
        await self._state.run(self._complete(keys=[self._entry(scope)], args=args))

    def _buffer(self, scope: str, unwritten: _Unwritten) -> None:
        self._unwritten[scope] = unwritten
        self._unwritten_bytes += unwritten.size
        _log.warning("idempotency_answer_buffered", buffered=len(self._unwritten))
        while len(self._unwritten) > 1 and (
            len(self._unwritten) > self._max_unwritten
            or self._unwritten_bytes > self._max_unwritten_bytes
        ):
            _, dropped = self._unwritten.popitem(last=False)
            self._unwritten_bytes -= dropped.size
            _log.warning("idempotency_answer_dropped", reason="write-back buffer full")
        self._keep()

    async def release(self, scope: str) -> None:
        held = self._held.pop(scope, None)
        if held is None:
            return
        with contextlib.suppress(StateUnavailable):  # unreachable: the lease frees the key
            args = [self._channel(scope), held.token]
            await self._state.run(self._release(keys=[self._entry(scope)], args=args))

    def _keep(self) -> None:
        """Make sure the loop that renews held claims and writes back answers is running."""
        if self._keeper is None and not self._closed:
            self._keeper = self._state.spawn(self._keep_claims())

    async def _keep_claims(self) -> None:
        try:
            # The flag, not only the cancel, ends the loop: a Redis call that is cancelled may
            # surface as a connection error, which the loop takes for an outage.
            while not self._closed and (self._held or self._unwritten):
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._renew_every_s):
                        await self._nudge.wait()
                self._nudge.clear()
                if self._state.down:
                    continue
                with contextlib.suppress(StateUnavailable):
                    await self._write_back()
                    await self._renew_held()
        finally:
            self._keeper = None

    async def _write_back(self) -> None:
        while self._unwritten:
            scope, unwritten = next(iter(self._unwritten.items()))
            await self._write(scope, unwritten)
            # Still the same entry: nothing replaced it while the write was in flight.
            if self._unwritten.get(scope) is unwritten:
                del self._unwritten[scope]
                self._unwritten_bytes -= unwritten.size

    async def _renew_held(self) -> None:
        held = list(self._held.items())
        if not held:
            return
        keys = [self._entry(scope) for scope, _ in held]
        args: list[str | int] = [self._lease_ms]
        for _, claim in held:
            args += (claim.token, claim.fingerprint)
        await self._state.run(self._renew(keys=keys, args=args))

    async def close(self) -> None:
        """Stop renewing and writing back (what a replica's death does)."""
        self._closed = True
        keeper = self._keeper
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

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
