"""The create-style POST, written once: authenticate -> prepare -> Idempotency-Key -> run -> settle.

Chat, music and uploads (and every create-style endpoint after them) state only what differs:
``prepare`` reads and checks the request (body, validation, model resolution) into a
``Prepared`` that knows its own fingerprint (or, for an endpoint that sets
``json_body_limit``, the pipeline reads the JSON object body and ``check`` does the rest
without a coroutine of its own); ``run`` serves it under the claimed ``Ticket`` (or
``None`` when the request has no key). The pipeline claims the key and renders a replay itself,
so an endpoint never sees a replayed request, and it always settles: first the prepared
request's own ``settle`` (a load-shedding slot, a rate-limit reservation, a temporary file),
then the ticket's release, which is a no-op once the answer was kept.

A failure with a non-retryable code under a claimed key is kept and replayed too when the
endpoint says so (``keeps_errors``: chat's provider 400s); otherwise any failure frees the key.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Generic, TypeVar

from gateway.config.settings import KeySettings
from gateway.contract.errors import GatewayError, error_response
from gateway.http.asgi import Request
from gateway.http.body import read_json_object
from gateway.policy.auth import KeyRing
from gateway.policy.idempotency import HEADER as IDEMPOTENCY_HEADER
from gateway.policy.idempotency import Idempotency, Ticket, render_replay
from gateway.policy.ratelimit import LoadShedder, RateLimiter
from gateway.policy.routing import Catalog
from gateway.stores.base import StoredResponse


class Prepared:
    """A request that passed every check that comes before its Idempotency-Key."""

    __slots__ = ()

    def fingerprint(self) -> str:
        """What the key is bound to (called only when the request has a key)."""
        raise NotImplementedError

    def before_replay(self) -> None:
        """Runs just before a kept answer is replayed (an upload drops its duplicate file)."""

    def settle(self) -> Awaitable[None] | None:
        """Runs once the request is over, whatever happened after ``prepare``; what it returns
        is awaited (``None``: nothing to wait for, the common case, without a coroutine)."""
        return None


P = TypeVar("P", bound=Prepared)


class CreateEndpoint(Generic[P]):
    """Subclasses implement ``prepare`` and ``run``."""

    keeps_errors = False
    json_body_limit: int | None = None  # set: the pipeline reads the body, ``check`` checks it

    def __init__(self, keys: KeyRing, idempotency: Idempotency) -> None:
        self._keys = keys
        self._idempotency = idempotency

    async def prepare(self, request: Request, key: KeySettings) -> P:
        raise NotImplementedError

    def check(self, request: Request, key: KeySettings, body: dict[str, Any]) -> P:
        """``prepare`` for a JSON body the pipeline has read (``json_body_limit``)."""
        raise NotImplementedError

    def run(
        self, request: Request, key: KeySettings, prepared: P, ticket: Ticket | None
    ) -> Awaitable[None]:
        """The work and its answer. Returning the endpoint's coroutine rather than awaiting it
        keeps the call chain one frame shorter for every event a stream relays."""
        raise NotImplementedError

    async def __call__(self, request: Request) -> None:
        key = self._keys.authenticate(request)
        if self.json_body_limit is not None:
            body = await read_json_object(request, self.json_body_limit)
            prepared = self.check(request, key, body)
        else:
            prepared = await self.prepare(request, key)
        ticket: Ticket | None = None
        try:
            # Most requests carry no key: they skip the claim, and the fingerprint (a
            # canonical dump of the body) is computed only for those that do.
            raw = request.header(IDEMPOTENCY_HEADER)
            if raw is not None:
                fingerprint = prepared.fingerprint()
                claimed = await self._idempotency.claim(raw, key.name, fingerprint)
                if isinstance(claimed, StoredResponse):
                    prepared.before_replay()
                    await render_replay(request, claimed)
                    return
                ticket = claimed
            await self.run(request, key, prepared, ticket)
        except GatewayError as error:
            if ticket is None or not self.keeps_errors or error.spec.retryable:
                raise
            await self._answer_and_keep(request, error, ticket)
        finally:
            settling = prepared.settle()
            if settling is not None:
                await settling
            if ticket is not None:
                await self._idempotency.release(ticket)  # unless the answer was kept

    async def _answer_and_keep(self, request: Request, error: GatewayError, ticket: Ticket) -> None:
        """A final (non-retryable) error under an Idempotency-Key, kept and replayed too."""
        request.ctx.error_code = error.code
        status, headers, body = error_response(error, request.ctx.request_id)
        ticket.record(body)
        await self._idempotency.finish(ticket, status, b"application/json")
        await request.respond_bytes(status, body, headers)


class RoutedEndpoint(CreateEndpoint[P]):
    """A create-style endpoint over the catalog with a JSON body, the key's and models' rate
    limits and the shared concurrency cap (chat, Responses, embeddings): what they all hold."""

    def __init__(
        self,
        keys: KeyRing,
        idempotency: Idempotency,
        catalog: Catalog,
        *,
        limiter: RateLimiter,
        shedder: LoadShedder,
        body_limit: int,
    ) -> None:
        super().__init__(keys, idempotency)
        self._catalog = catalog
        self.limiter = limiter
        self.shedder = shedder
        self.json_body_limit = body_limit
