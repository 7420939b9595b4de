"""``POST /v1/chat/completions``: the Available chat surface, sync and SSE streaming.

Reads top to bottom as the request path: auth -> body -> validate -> route -> relay -> render.
Streams are written as chunks arrive; the ``model`` of every answer is rewritten to the catalog id
that served it. After the first byte, a failure becomes an SSE error event and the stream ends
without ``[DONE]``.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.asgi import JSON_HEADERS, Request, RequestContext
from gateway.auth import KeyRing
from gateway.body import read_json_object
from gateway.chat_validate import validate_chat
from gateway.disconnect import cancel_on_disconnect
from gateway.errors import envelope
from gateway.metrics import Metrics
from gateway.relay import Relay, to_gateway_error
from gateway.routing import Catalog
from providers.base import JSON, ChatCall, UpstreamError

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # tell nginx-style proxies in front not to buffer the stream
]
DONE_EVENT = b"data: [DONE]\n\n"


def record_usage(ctx: RequestContext, usage: Any) -> None:
    if isinstance(usage, dict):
        prompt = usage.get("prompt_tokens")
        completion = usage.get("completion_tokens")
        if isinstance(prompt, int):
            ctx.prompt_tokens = prompt
        if isinstance(completion, int):
            ctx.completion_tokens = completion


class ChatEndpoint:
    def __init__(
        self, keys: KeyRing, catalog: Catalog, relay: Relay, metrics: Metrics, body_limit: int
    ) -> None:
        self._keys = keys
        self._catalog = catalog
        self._relay = relay
        self._metrics = metrics
        self._body_limit = body_limit

    async def __call__(self, request: Request) -> None:
        ctx = request.ctx
        key = self._keys.authenticate(request)
        body = await read_json_object(request, self._body_limit)
        chat = validate_chat(body)
        ctx.model_asked = chat.model
        ctx.stream = chat.stream
        plan = self._catalog.resolve(chat.model, key, "chat.stream" if chat.stream else "chat")
        call = ChatCall(
            body=body,
            upstream_model="",
            request_id=ctx.request_id,
            stream=chat.stream,
            include_usage=chat.include_usage,
        )
        if chat.stream:
            await self._stream(request, plan, call)
        else:
            await self._complete(request, plan, call)

    async def _complete(self, request: Request, plan: Any, call: ChatCall) -> None:
        async with cancel_on_disconnect(request) as guard:
            candidate, answer = await self._relay.complete(plan, call, request.ctx)
            answer["model"] = candidate.model.id
            record_usage(request.ctx, answer.get("usage"))
            guard.finishing()
            await request.respond_bytes(200, orjson.dumps(answer), JSON_HEADERS)

    async def _stream(self, request: Request, plan: Any, call: ChatCall) -> None:
        ctx = request.ctx
        send = request.send
        async with cancel_on_disconnect(request) as guard:
            opened = await self._relay.open_stream(plan, call, ctx)
            model_id = opened.candidate.model.id
            self._metrics.open_streams.inc()
            try:
                await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
                event = self._event(opened.first, model_id, call.include_usage, ctx)
                ctx.ttft = ctx.elapsed()
                if event is not None:
                    await send({"type": "http.response.body", "body": event, "more_body": True})
                try:
                    async for chunk in opened.rest:
                        event = self._event(chunk, model_id, call.include_usage, ctx)
                        if event is not None:
                            await send(
                                {"type": "http.response.body", "body": event, "more_body": True}
                            )
                except UpstreamError as error:
                    gateway_error = to_gateway_error(error)
                    ctx.error_code = gateway_error.code
                    final = b"data: " + envelope(gateway_error, ctx.request_id) + b"\n\n"
                else:
                    final = DONE_EVENT
                guard.finishing()
                await send({"type": "http.response.body", "body": final, "more_body": False})
            finally:
                self._metrics.open_streams.dec()
                await opened.rest.aclose()  # type: ignore[attr-defined]

    @staticmethod
    def _event(
        chunk: JSON, model_id: str, include_usage: bool, ctx: RequestContext
    ) -> bytes | None:
        """One chunk as an SSE event, or None for a usage chunk the client did not ask for."""
        if "usage" in chunk:
            usage = chunk["usage"]
            if usage is not None:
                record_usage(ctx, usage)
            if not include_usage:
                if not chunk.get("choices"):
                    return None
                del chunk["usage"]
        chunk["model"] = model_id
        return b"data: " + orjson.dumps(chunk) + b"\n\n"
