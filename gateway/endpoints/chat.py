"""``POST /v1/chat/completions``: the Available chat surface, sync and SSE streaming.

Reads top to bottom as the request path: auth -> body -> shed load -> validate -> route ->
idempotency -> rate limit -> relay -> render -> settle. Streams are written as chunks arrive; the
``model`` of every answer is rewritten to the catalog id that served it. After the first byte, a
failure becomes an SSE error event and the stream ends without ``[DONE]``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any

import orjson

from gateway.config.settings import KeySettings
from gateway.contract.chat_validate import ChatRequest, validate_chat
from gateway.contract.errors import GatewayError, error_event, from_upstream
from gateway.contract.schemas_catalog import chat_request_schema
from gateway.http.asgi import JSON_HEADERS, Request, RequestContext, Send
from gateway.http.disconnect import cancel_on_disconnect
from gateway.metrics import Metrics
from gateway.policy.auth import KeyRing
from gateway.policy.create import Prepared, RoutedEndpoint
from gateway.policy.idempotency import Idempotency, Ticket
from gateway.policy.ratelimit import LoadShedder, RateLimiter, Reservation
from gateway.policy.relay import Relay, RelayCanceled, RelayFailed
from gateway.policy.routing import Candidate, Catalog
from gateway.policy.served import (
    SSE_HEADERS,
    answer_headers,
    record_usage,
    relay_answered,
    relay_ended,
    tokens_used,
)
from providers.base import JSON, ChatCall, FinalBatch, UpstreamError

DONE_EVENT = b"data: [DONE]\n\n"


class PreparedChat(Prepared):
    """A chat request past validation and model resolution, holding a load-shedding slot."""

    __slots__ = (
        "body",
        "call",
        "chat",
        "endpoint",
        "plan",
        "request",
        "reservation",
    )

    def __init__(
        self,
        request: Request,
        body: dict[str, Any],
        chat: ChatRequest,
        plan: list[Candidate],
        endpoint: ChatEndpoint,
    ) -> None:
        self.request = request
        self.body = body
        self.chat = chat
        self.plan = plan
        self.endpoint = endpoint
        self.reservation: Reservation | None = None
        # What the relay sends (each deployment gets a copy naming its own upstream model).
        # Positional: this runs on every request.
        ctx = request.ctx
        self.call = ChatCall(body, "", ctx.request_id, chat.stream, chat.include_usage)
        if ctx.span is not None:
            self.call.trace = ctx.span  # the relay hangs each attempt's span from it

    def fingerprint(self) -> str:
        return Idempotency.fingerprint("POST", self.request.path, self.body)

    def settle(self) -> Awaitable[None] | None:
        self.endpoint.shedder.exit()
        reservation = self.reservation
        if reservation is None:
            return None
        ctx = self.request.ctx
        return self.endpoint.limiter.settle(reservation, ctx.model_served, tokens_used(ctx))


class ChatEndpoint(RoutedEndpoint[PreparedChat]):
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
    ) -> None:
        super().__init__(
            keys, idempotency, catalog, limiter=limiter, shedder=shedder, body_limit=body_limit
        )
        self._relay = relay
        self._metrics = metrics

    def request_schema(self) -> dict[str, Any]:
        """The request body's JSON Schema for this catalog (for ``/openapi.json``)."""
        return chat_request_schema(self._catalog)

    def check(self, request: Request, key: KeySettings, body: dict[str, Any]) -> PreparedChat:
        ctx = request.ctx
        # The body was read before taking a concurrency slot: a client sending it slowly must
        # not hold a slot (the server's body deadline bounds how long it may take).
        self.shedder.enter()
        try:
            chat = validate_chat(body)
            ctx.stream = chat.stream
            capability = "chat.stream" if chat.stream else "chat"
            plan = self._catalog.resolve(chat.model, key, capability)
        except BaseException:
            self.shedder.exit()
            raise
        # Logged only once it names a real model: an unknown name is client text, kept out.
        ctx.model_asked = chat.model
        return PreparedChat(request, body, chat, plan, self)

    def run(
        self, request: Request, key: KeySettings, prepared: PreparedChat, ticket: Ticket | None
    ) -> Awaitable[None]:
        if prepared.chat.stream:
            return self._stream(request, key, prepared, ticket)
        return self._complete(request, key, prepared, ticket)

    async def _complete(
        self, request: Request, key: KeySettings, prepared: PreparedChat, ticket: Ticket | None
    ) -> None:
        # Rate limits come after the Idempotency-Key: a replay is never charged.
        plan, reservation = await self.limiter.admit(key, prepared.plan, prepared.chat)
        prepared.reservation = reservation  # settled when the request is over
        call = prepared.call
        ctx = request.ctx
        async with cancel_on_disconnect(request) as guard:
            try:
                relayed = await self._relay.complete(plan, call)
            except (RelayFailed, RelayCanceled) as ended:
                raise relay_ended(ctx, ended) from None
            # Inline, not relay_answered(): this is the busiest line of the JSON path.
            candidate, answer, ctx.attempts, ctx.upstream_seconds = relayed
            ctx.provider = candidate.deployment.provider
            answer["model"] = ctx.model_served = candidate.model.id
            record_usage(ctx, answer.get("usage"))
            body = orjson.dumps(answer)
            if ticket is not None:
                ticket.record(body)
                await self._idempotency.finish(ticket, 200, b"application/json")
            guard.finishing()
            await request.respond_bytes(200, body, answer_headers(JSON_HEADERS, reservation))

    async def _stream(
        self, request: Request, key: KeySettings, prepared: PreparedChat, ticket: Ticket | None
    ) -> None:
        # Rate limits come after the Idempotency-Key: a replay is never charged.
        plan, reservation = await self.limiter.admit(key, prepared.plan, prepared.chat)
        prepared.reservation = reservation  # settled when the request is over
        call = prepared.call
        ctx = request.ctx
        send = request.send
        async with cancel_on_disconnect(request) as guard:
            try:
                opened = await self._relay.open_stream(plan, call)
            except (RelayFailed, RelayCanceled) as ended:
                raise relay_ended(ctx, ended) from None
            model_id = relay_answered(ctx, opened)
            first, rest = opened[1]
            self._metrics.open_streams.inc()
            try:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": answer_headers(SSE_HEADERS, reservation),
                    }
                )
                events = self._events(first, model_id, call.include_usage, ctx)
                ctx.ttft = ctx.elapsed()
                # The events of a FinalBatch wait for the end of the stream and leave with it:
                # one write instead of two (the iterator is still read to its end, so the
                # upstream connection goes back to the pool).
                tail = events if type(first) is FinalBatch else b""
                if events and not tail:
                    await self._send_events(send, events, ticket)
                try:
                    async for batch in rest:
                        if tail:  # not the last after all
                            await self._send_events(send, tail, ticket)
                        events = self._events(batch, model_id, call.include_usage, ctx)
                        tail = events if type(batch) is FinalBatch else b""
                        if events and not tail:
                            await self._send_events(send, events, ticket)
                except UpstreamError as error:
                    if tail:
                        await self._send_events(send, tail, ticket)
                    gateway_error = from_upstream(error)
                    ctx.error_code = gateway_error.code
                    # The status is already 200: this counter is where such failures show.
                    self._metrics.stream_errors.labels(model_id, gateway_error.code).inc()
                    final = error_event(gateway_error, ctx.request_id)
                except asyncio.CancelledError:
                    # The server's shutdown grace ran out (or the client left): say so, as for
                    # any failure after the first byte. After a disconnect the send is a no-op.
                    if not ctx.disconnected:
                        ctx.error_code = "service_unavailable"
                    cut = GatewayError("service_unavailable", "The gateway is shutting down.")
                    with contextlib.suppress(Exception):
                        await send(
                            {
                                "type": "http.response.body",
                                "body": error_event(cut, ctx.request_id),
                                "more_body": False,
                            }
                        )
                    raise
                else:
                    final = tail + DONE_EVENT
                    if ticket is not None:
                        # Only a stream that really completed is kept for replay.
                        ticket.record(final)
                        await self._idempotency.finish(ticket, 200, SSE_HEADERS[0][1])
                guard.finishing()
                await send({"type": "http.response.body", "body": final, "more_body": False})
            finally:
                self._metrics.open_streams.dec()
                await rest.aclose()  # type: ignore[attr-defined]

    @staticmethod
    def _send_events(send: Send, events: bytes, ticket: Ticket | None) -> Awaitable[None]:
        """One batch of events to the client (kept for replay under a key). Returns the send's
        own awaitable, so a batch costs no coroutine of its own."""
        if ticket is not None:
            ticket.record(events)
        return send({"type": "http.response.body", "body": events, "more_body": True})

    @staticmethod
    def _events(
        batch: list[JSON], model_id: str, include_usage: bool, ctx: RequestContext
    ) -> bytes:
        """A batch of chunks as SSE events, without a usage chunk the client did not ask for."""
        out = b""
        for chunk in batch:
            if "usage" in chunk:
                usage = chunk["usage"]
                if usage is not None:
                    record_usage(ctx, usage)
                if not include_usage:
                    if not chunk.get("choices"):
                        continue
                    del chunk["usage"]
            chunk["model"] = model_id
            out += b"data: " + orjson.dumps(chunk) + b"\n\n"
        return out
