"""``Idempotency-Key`` for create-style POSTs: one upstream call per key, replayed answers.

A key is scoped to the API key that sent it and bound to a fingerprint of method, path and the
canonical body. The first request claims the key and records its response as it is sent; a
duplicate waits for it and replays those exact bytes (``Idempotent-Replayed: true``), a different
body is ``idempotency_conflict``, a duplicate that waits too long is ``idempotency_in_progress``.
Only 2xx answers and non-retryable 4xx are kept: after a retryable failure the key is released,
so the client's retry really runs again.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable
from typing import Any

import orjson

from gateway.config.settings import IdempotencySettings
from gateway.contract.errors import GatewayError, invalid
from gateway.http.asgi import Request
from gateway.metrics import Metrics
from gateway.stores.base import IdempotencyStore, StoredResponse

HEADER = b"idempotency-key"
KEY_PATTERN = "[!-~]{1,255}"  # visible ASCII (0x21-0x7e), 1-255 characters
_VALID_KEY = re.compile(KEY_PATTERN.encode())


class Ticket:
    """A claimed key: records the response as it goes out, within the size cap."""

    __slots__ = ("_cap", "_parts", "_size", "overflow", "scope", "settled")

    def __init__(self, scope: str, cap: int) -> None:
        self.scope = scope
        self._cap = cap
        self._parts: list[bytes] = []
        self._size = 0
        self.overflow = False
        self.settled = False

    def record(self, data: bytes) -> None:
        if self.overflow:
            return
        self._size += len(data)
        if self._size > self._cap:
            self.overflow = True
            self._parts.clear()
        else:
            self._parts.append(data)

    def body(self) -> bytes:
        return b"".join(self._parts)


async def render_replay(request: Request, stored: StoredResponse) -> None:
    """Answer with a kept response, byte for byte, marked ``Idempotent-Replayed: true``."""
    request.ctx.replayed = True
    await request.respond_bytes(
        stored.status,
        stored.body,
        [(b"content-type", stored.content_type), (b"idempotent-replayed", b"true")],
    )


class Idempotency:
    def __init__(
        self,
        settings: IdempotencySettings,
        store: IdempotencyStore,
        metrics: Metrics,
        clock: Callable[[], float],
    ) -> None:
        self._settings = settings
        self._store = store
        self._metrics = metrics
        self._clock = clock

    @staticmethod
    def fingerprint(method: str, path: str, body: Any) -> str:
        """Method, path and the canonical JSON body (key order and whitespace do not matter)."""
        canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(f"{method} {path}\n".encode() + canonical).hexdigest()

    async def claim(self, raw: bytes, key_name: str, fingerprint: str) -> Ticket | StoredResponse:
        """Claim the Idempotency-Key ``raw`` (the header's bytes) for ``fingerprint``: a
        ``Ticket`` to record the answer under, or the kept answer to replay
        (``render_replay``). Refusals (malformed, conflict, still running, unreplayable)
        raise."""
        if not _VALID_KEY.fullmatch(raw):
            raise invalid(
                [{"field": "Idempotency-Key", "issue": "must be 1-255 visible ASCII characters"}]
            )
        scope = f"{key_name}\n{raw.decode()}"
        try:
            async with asyncio.timeout(self._settings.wait_s):
                while True:
                    claim = await self._store.claim(scope, fingerprint, self._clock())
                    if claim.state != "in_progress":
                        break
                    await self._store.wait(scope)
        except TimeoutError:
            self._count("in_progress")
            raise GatewayError("idempotency_in_progress") from None
        if claim.state == "new":
            return Ticket(scope, self._settings.max_response_bytes)
        self._count(claim.state)
        if claim.state == "conflict":
            raise GatewayError("idempotency_conflict")
        if claim.state == "unreplayable" or claim.response is None:
            raise GatewayError(
                "idempotency_conflict",
                "The original response to this Idempotency-Key was too large to keep; "
                "it will not be replayed or run again. Use a new key.",
            )
        return claim.response

    async def finish(self, ticket: Ticket, status: int, content_type: bytes) -> None:
        """Keep the recorded response for the window (or remember it as too large)."""
        ticket.settled = True
        stored = None
        if not ticket.overflow:
            stored = StoredResponse(status, content_type, ticket.body())
        await self._store.complete(ticket.scope, stored, self._clock())

    async def respond_and_keep(
        self, request: Request, ticket: Ticket | None, status: int, data: Any
    ) -> None:
        """Answer with JSON ``data`` and, under a claimed key, keep it for replays."""
        body = orjson.dumps(data)
        if ticket is not None:
            ticket.record(body)
            await self.finish(ticket, status, b"application/json")
        await request.respond_bytes(status, body)

    async def release(self, ticket: Ticket) -> None:
        """Forget the key: the outcome was a retryable failure (or the client left)."""
        if not ticket.settled:
            ticket.settled = True
            await self._store.release(ticket.scope)

    def _count(self, outcome: str) -> None:
        self._metrics.idempotency.labels(outcome).inc()
