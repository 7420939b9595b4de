"""``POST /v1/embeddings``: OpenAI's embeddings surface over the catalog's embeddings models.

Reads top to bottom as the request path, on the create-POST pipeline like chat: auth -> body ->
shed load -> validate -> route (models with the ``embeddings`` capability that can give the
asked ``dimensions``) -> idempotency -> rate limit (the input's tokens reserved, settled with the
provider's count) -> relay (retries, fallback) -> render -> settle. The answer's ``model`` is the
catalog id that served it.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import orjson

from gateway.config.settings import KeySettings
from gateway.contract.embeddings_validate import EmbeddingsRequest, validate_embeddings
from gateway.contract.errors import invalid
from gateway.contract.schemas_catalog import embeddings_request_schema
from gateway.http.asgi import JSON_HEADERS, Request
from gateway.http.disconnect import cancel_on_disconnect
from gateway.policy.auth import KeyRing
from gateway.policy.create import Prepared, RoutedEndpoint
from gateway.policy.idempotency import Idempotency, Ticket
from gateway.policy.ratelimit import LoadShedder, RateLimiter, Reservation
from gateway.policy.relay import PlanRelay, RelayCanceled, RelayFailed
from gateway.policy.routing import Candidate, Catalog
from providers.base import JSON, ChatCall
from providers.embeddings.base import EmbeddingsAdapter

CAPABILITY = "embeddings"


def _embed(adapter: EmbeddingsAdapter, call: ChatCall) -> Awaitable[JSON]:
    return adapter.embed(call)


def fitting(plan: list[Candidate], ask: EmbeddingsRequest) -> list[Candidate]:
    """The candidates whose model can give the asked ``dimensions`` (a model that does not
    declare its size is left to its provider to refuse)."""
    wanted = ask.dimensions
    if wanted is None:
        return plan
    fit = [c for c in plan if c.model.dimensions is None or c.model.dimensions >= wanted]
    if not fit:
        largest = max(c.model.dimensions or 0 for c in plan)
        issue = f"{ask.model[:100]} gives at most {largest} dimensions"
        raise invalid([{"field": "dimensions", "issue": issue}])
    return fit


class PreparedEmbeddings(Prepared):
    """An embeddings request past validation and routing, holding a load-shedding slot."""

    __slots__ = ("ask", "endpoint", "plan", "request", "reservation")

    def __init__(
        self,
        request: Request,
        ask: EmbeddingsRequest,
        plan: list[Candidate],
        endpoint: EmbeddingsEndpoint,
    ) -> None:
        self.request = request
        self.ask = ask
        self.plan = plan
        self.endpoint = endpoint
        self.reservation: Reservation | None = None

    def fingerprint(self) -> str:
        return Idempotency.fingerprint("POST", self.request.path, self.ask.body)

    def settle(self) -> Awaitable[None] | None:
        self.endpoint.shedder.exit()
        reservation = self.reservation
        if reservation is None:
            return None
        ctx = self.request.ctx
        # Nothing served: every reserved token goes back; else the provider's count.
        used = 0 if ctx.model_served is None else ctx.prompt_tokens
        return self.endpoint.limiter.settle(reservation, ctx.model_served, used)


class EmbeddingsEndpoint(RoutedEndpoint[PreparedEmbeddings]):
    keeps_errors = True  # a provider's 400 is the answer to this body: replay it

    def __init__(
        self,
        keys: KeyRing,
        catalog: Catalog,
        relay: PlanRelay[EmbeddingsAdapter],
        *,
        limiter: RateLimiter,
        shedder: LoadShedder,
        idempotency: Idempotency,
        body_limit: int,
    ) -> None:
        super().__init__(
            keys, idempotency, catalog, limiter=limiter, shedder=shedder, body_limit=body_limit
        )
        self._relay = relay

    def request_schema(self) -> dict[str, Any]:
        """The request body's JSON Schema for this catalog (for ``/openapi.json``)."""
        return embeddings_request_schema(self._catalog)

    def check(self, request: Request, key: KeySettings, body: dict[str, Any]) -> PreparedEmbeddings:
        self.shedder.enter()
        try:
            ask = validate_embeddings(body)
            plan = fitting(self._catalog.resolve(ask.model, key, CAPABILITY), ask)
        except BaseException:
            self.shedder.exit()
            raise
        # Logged only once it names a real model: an unknown name is client text, kept out.
        request.ctx.model_asked = ask.model
        return PreparedEmbeddings(request, ask, plan, self)

    async def run(
        self,
        request: Request,
        key: KeySettings,
        prepared: PreparedEmbeddings,
        ticket: Ticket | None,
    ) -> None:
        ask = prepared.ask
        # Rate limits come after the Idempotency-Key: a replay is never charged.
        plan, reservation = await self.limiter.admit(key, prepared.plan, ask.tokens)
        prepared.reservation = reservation
        ctx = request.ctx
        async with cancel_on_disconnect(request) as guard:
            try:
                relayed = await self._relay.run(
                    plan, ChatCall(ask.body, "", ctx.request_id), _embed
                )
            except (RelayFailed, RelayCanceled) as ended:
                ctx.attempts = ended.attempts
                ctx.upstream_seconds = ended.upstream_seconds
                raise (ended.error if isinstance(ended, RelayFailed) else ended) from None
            candidate, answer, ctx.attempts, ctx.upstream_seconds = relayed
            ctx.provider = candidate.deployment.provider
            ctx.model_served = candidate.model.id
            body = orjson.dumps(self._answer(answer, candidate.model.id, ask, request))
            if ticket is not None:
                ticket.record(body)
                await self._idempotency.finish(ticket, 200, b"application/json")
            guard.finishing()
            headers = JSON_HEADERS if reservation is None else [*JSON_HEADERS, *reservation.headers]
            await request.respond_bytes(200, body, headers)

    @staticmethod
    def _answer(answer: JSON, model_id: str, ask: EmbeddingsRequest, request: Request) -> JSON:
        """OpenAI's list object, labelled with the catalog id; usage as the provider counted
        it, or the gateway's estimate when it did not say."""
        usage = answer.get("usage")
        prompt = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        if not isinstance(prompt, int) or isinstance(prompt, bool):
            prompt = ask.tokens
        request.ctx.prompt_tokens = prompt
        return {
            "object": "list",
            "data": answer["data"],
            "model": model_id,
            "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
        }
