"""``POST /v1/responses``: OpenAI's Responses API on every chat provider, sync and streamed.

A Responses request is translated to a chat completion (``gateway.contract.responses_request``)
and served exactly as chat is, on the create-POST pipeline: auth -> body -> shed load -> check
-> route (capability ``chat``) -> Idempotency-Key -> rate limit -> relay -> render -> settle.
The chat answer is translated back into a ``Response`` (``responses_answer``), a stream's chunks
into Responses events as they arrive (``responses_stream``). A deployment whose provider speaks
the Responses API natively is sent the Responses body itself instead (``responses_relay``,
``responses_native``), and its answer and events are relayed as they come. ``model`` is always
the catalog id that answered. After the first event a failure is one ``error`` event and the
stream ends.

Unless ``store`` is false the answer is stored (owner, conversation items and the Response) in
the state store before it is sent, so a ``previous_response_id`` naming it can continue it: its
items and output are put before the new input. A store that cannot take it does not cost the
client the answer: it is logged (``response_not_stored``) and sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from typing import Any

import orjson
import structlog

from gateway.config.settings import KeySettings
from gateway.contract.chat_validate import ChatRequest
from gateway.contract.errors import DependencyUnavailable, GatewayError, from_upstream
from gateway.contract.ids import RESPONSE_ID, new_response_id
from gateway.contract.responses_answer import from_completion, output_items
from gateway.contract.responses_native import NativeEvents, chat_usage, native_body
from gateway.contract.responses_request import ResponsesRequest, chat_body, read_request
from gateway.contract.responses_stream import ResponseEvents
from gateway.contract.schemas_catalog import responses_request_schema
from gateway.http.asgi import JSON_HEADERS, Request
from gateway.http.disconnect import cancel_on_disconnect
from gateway.metrics import Metrics
from gateway.policy.auth import KeyRing
from gateway.policy.create import Prepared, RoutedEndpoint
from gateway.policy.idempotency import Idempotency, Ticket
from gateway.policy.ratelimit import LoadShedder, RateLimiter, Reservation
from gateway.policy.relay import Relay, RelayCanceled, RelayFailed
from gateway.policy.responses_relay import ResponsesCalls
from gateway.policy.routing import Candidate, Catalog
from gateway.policy.served import (
    SSE_HEADERS,
    answer_headers,
    record_usage,
    relay_answered,
    relay_ended,
    tokens_used,
)
from gateway.stores.base import ResponseStore, SavedResponse
from providers.base import JSON, ChatCall, UpstreamError

_log = structlog.get_logger("beatra.responses")


class PreparedResponse(Prepared):
    """A Responses request past its checks and model resolution, holding a shedding slot."""

    __slots__ = (
        "body",
        "chat",
        "created_at",
        "earlier",
        "endpoint",
        "native",
        "plan",
        "request",
        "reservation",
        "wanted",
    )

    def __init__(
        self,
        request: Request,
        body: dict[str, Any],
        wanted: ResponsesRequest,
        plan: list[Candidate],
        endpoint: ResponsesEndpoint,
    ) -> None:
        self.request = request
        self.body = body
        self.wanted = wanted
        self.plan = plan
        self.endpoint = endpoint
        self.chat: ChatRequest = chat_body(wanted)
        self.earlier: list[JSON] = []  # the stored conversation a previous_response_id names
        self.native = ResponsesCalls(body)  # what a provider speaking Responses is sent
        self.created_at = int(time.time())
        self.reservation: Reservation | None = None

    def fingerprint(self) -> str:
        return Idempotency.fingerprint("POST", self.request.path, self.body)

    def settle(self) -> Awaitable[None] | None:
        self.endpoint.shedder.exit()
        reservation = self.reservation
        if reservation is None:
            return None
        ctx = self.request.ctx
        return self.endpoint.limiter.settle(reservation, ctx.model_served, tokens_used(ctx))

    def call(self) -> ChatCall:
        chat = self.chat
        return ChatCall(chat.body, "", self.request.ctx.request_id, chat.stream, True)


class ResponsesEndpoint(RoutedEndpoint[PreparedResponse]):
    keeps_errors = True  # a provider's 400 is the answer to this body: replay it

    def __init__(
        self,
        keys: KeyRing,
        catalog: Catalog,
        relay: Relay,
        metrics: Metrics,
        *,
        limiter: RateLimiter,
        shedder: LoadShedder,
        idempotency: Idempotency,
        body_limit: int,
        store: ResponseStore,
    ) -> None:
        super().__init__(
            keys, idempotency, catalog, limiter=limiter, shedder=shedder, body_limit=body_limit
        )
        self._store = store
        self._relay = relay
        self._metrics = metrics

    def check(self, request: Request, key: KeySettings, body: dict[str, Any]) -> PreparedResponse:
        ctx = request.ctx
        # As chat: the body was read before taking a slot, so a slow sender holds none.
        self.shedder.enter()
        try:
            wanted = read_request(body)
            ctx.stream = wanted.stream
            capability = "chat.stream" if wanted.stream else "chat"
            plan = self._catalog.resolve(wanted.model, key, capability)
            prepared = PreparedResponse(request, body, wanted, plan, self)
        except BaseException:
            self.shedder.exit()
            raise
        ctx.model_asked = wanted.model  # logged only once it names a real model
        return prepared

    def request_schema(self) -> dict[str, Any]:
        """The request body's JSON Schema for this catalog (for ``/openapi.json``)."""
        return responses_request_schema(self._catalog)

    async def run(
        self, request: Request, key: KeySettings, prepared: PreparedResponse, ticket: Ticket | None
    ) -> None:
        previous = prepared.wanted.previous_response_id
        if previous is not None:
            saved = await self._store.get(previous) if RESPONSE_ID.fullmatch(previous) else None
            if saved is None or saved.owner != key.name:  # another key's: as if there were none
                raise GatewayError(
                    "not_found",
                    "No stored response has this previous_response_id.",
                    details=[{"field": "previous_response_id", "issue": "no such response"}],
                )
            prepared.earlier = [*saved.items, *output_items(saved.response)]
            prepared.chat = chat_body(prepared.wanted, prepared.earlier)
            prepared.native = ResponsesCalls(native_body(prepared.body, prepared.earlier))
        if prepared.wanted.stream:
            await self._stream(request, key, prepared, ticket)
        else:
            await self._complete(request, key, prepared, ticket)

    async def _keep(self, key: KeySettings, prepared: PreparedResponse, response: JSON) -> None:
        """Store the answer unless the request said ``store: false``."""
        if not prepared.wanted.store:
            return
        items = [*prepared.earlier, *prepared.wanted.items]
        saved = SavedResponse(response["id"], key.name, items, response)
        try:
            await self._store.put(saved)
        except DependencyUnavailable:
            _log.warning(
                "response_not_stored",
                request_id=prepared.request.ctx.request_id,
                response_id=response["id"],
            )

    async def _complete(
        self, request: Request, key: KeySettings, prepared: PreparedResponse, ticket: Ticket | None
    ) -> None:
        # Rate limits come after the Idempotency-Key: a replay is never charged.
        plan, reservation = await self.limiter.admit(key, prepared.plan, prepared.chat)
        prepared.reservation = reservation
        ctx = request.ctx
        async with cancel_on_disconnect(request) as guard:
            try:
                relayed = await self._relay.run(plan, prepared.call(), prepared.native.complete)
            except (RelayFailed, RelayCanceled) as ended:
                raise relay_ended(ctx, ended) from None
            model_id = relay_answered(ctx, relayed)
            native, answer = relayed[1]
            if native:
                response = answer
                response["model"] = model_id
                record_usage(ctx, chat_usage(answer.get("usage")))
            else:
                record_usage(ctx, answer.get("usage"))
                response = from_completion(
                    prepared.wanted,
                    answer,
                    model_id,
                    new_response_id(),
                    created_at=prepared.created_at,
                    completed_at=int(time.time()),
                )
            await self._keep(key, prepared, response)
            body = orjson.dumps(response)
            if ticket is not None:
                ticket.record(body)
                await self._idempotency.finish(ticket, 200, b"application/json")
            guard.finishing()
            await request.respond_bytes(200, body, answer_headers(JSON_HEADERS, reservation))

    async def _stream(
        self, request: Request, key: KeySettings, prepared: PreparedResponse, ticket: Ticket | None
    ) -> None:
        plan, reservation = await self.limiter.admit(key, prepared.plan, prepared.chat)
        prepared.reservation = reservation
        ctx = request.ctx
        send = request.send
        async with cancel_on_disconnect(request) as guard:
            try:
                opened = await self._relay.run(plan, prepared.call(), prepared.native.open_stream)
            except (RelayFailed, RelayCanceled) as ended:
                raise relay_ended(ctx, ended) from None
            model_id = relay_answered(ctx, opened)
            native, (first, rest) = opened[1]
            events: ResponseEvents | NativeEvents
            if native:
                events = NativeEvents(model_id)
            else:
                events = ResponseEvents(prepared.wanted, new_response_id(), model_id)
            self._metrics.open_streams.inc()

            async def write(data: bytes) -> None:
                if ticket is not None:
                    ticket.record(data)
                await send({"type": "http.response.body", "body": data, "more_body": True})

            try:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": answer_headers(SSE_HEADERS, reservation),
                    }
                )
                ctx.ttft = ctx.elapsed()
                await write(events.start() + events.feed(first))
                try:
                    async for batch in rest:
                        data = events.feed(batch)
                        if data:
                            await write(data)
                except UpstreamError as error:
                    record_usage(ctx, events.usage)
                    gateway_error = from_upstream(error)
                    ctx.error_code = gateway_error.code
                    self._metrics.stream_errors.labels(model_id, gateway_error.code).inc()
                    final = events.error(gateway_error.code, gateway_error.message)
                except asyncio.CancelledError:
                    # The shutdown grace ran out (or the client left): say so, as for any
                    # failure after the first byte. After a disconnect the send is a no-op.
                    if not ctx.disconnected:
                        ctx.error_code = "service_unavailable"
                    cut = events.error("service_unavailable", "The gateway is shutting down.")
                    with contextlib.suppress(Exception):
                        await send({"type": "http.response.body", "body": cut, "more_body": False})
                    raise
                else:
                    record_usage(ctx, events.usage)
                    final = events.finish()
                    assert events.response is not None
                    await self._keep(key, prepared, events.response)
                    if ticket is not None:
                        # Only a stream that really completed is kept for replay.
                        ticket.record(final)
                        await self._idempotency.finish(ticket, 200, SSE_HEADERS[0][1])
                guard.finishing()
                await send({"type": "http.response.body", "body": final, "more_body": False})
            finally:
                self._metrics.open_streams.dec()
                await rest.aclose()  # type: ignore[attr-defined]
