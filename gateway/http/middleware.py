"""The one plain-ASGI layer every request passes before the router: the edge.

It does three things, in this order, each in its own method:

- request id: accept the client's ``X-Request-Id`` or generate one, create the
  ``RequestContext``, and echo the id on every response (errors and streams included);
- telemetry: report each request once, as one access-log line and its HTTP metrics;
- last resort: turn an unexpected exception into the ``internal_error`` envelope, still with
  ``X-Request-Id`` and without any trace.

They share one coroutine frame on purpose: every resumption of a request's coroutine walks the
whole chain of awaiting frames, so three stacked middlewares cost measurably more than one. The
edge never buffers a body, so streams pass straight through.

The head's own limits (field count and size, single-value headers sent twice) are enforced
before the edge, while the head is parsed (``gateway/http/server_protocol.py``).
"""

from __future__ import annotations

import random
import re
import time
from typing import TYPE_CHECKING

import structlog

from gateway.contract.errors import GatewayError, error_response
from gateway.contract.ids import CROCKFORD_PAIRS, PAIR_SHIFTS
from gateway.http.asgi import CONTEXT_KEY, ASGIApp, Message, Receive, RequestContext, Scope, Send
from gateway.logs import log_access

if TYPE_CHECKING:
    from gateway.metrics import Metrics
    from gateway.telemetry import Tracing

REQUEST_ID_PATTERN = "[A-Za-z0-9._:-]{1,128}"  # a client's id is kept only if it is this
_CLIENT_ID = re.compile(REQUEST_ID_PATTERN.encode())
_log = structlog.get_logger("beatra.gateway")
_random_bits = random.Random().getrandbits


def new_request_id() -> str:
    """``req_`` + 26 chars: a 48-bit millisecond timestamp then 80 random bits, as in a ULID
    (so ids sort by time). The bits come from a fast PRNG: ids must be unique, not secret."""
    value = (time.time_ns() // 1_000_000) << 80 | _random_bits(80)
    pairs = CROCKFORD_PAIRS
    return "req_" + "".join([pairs[(value >> shift) & 1023] for shift in PAIR_SHIFTS])


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, tracing: Tracing | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.tracing = tracing  # None: traces are off, and cost one test per request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctx = self._begin(scope)
        tracing = self.tracing
        if tracing is not None:
            ctx.span = tracing.start_request(scope["method"], ctx.headers, ctx.request_id)
        id_header = (b"x-request-id", ctx.request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                ctx.status = message["status"]
                ctx.response_started = True
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        self.metrics.inflight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            await self._last_resort(ctx, send_with_id)
        finally:
            self.metrics.inflight.dec()
            self._report(scope, ctx)

    @staticmethod
    def _begin(scope: Scope) -> RequestContext:
        """Request id and context: the client's id if it is well-formed, else a new one."""
        headers = dict(scope["headers"])
        offered = headers.get(b"x-request-id")
        if offered is not None and _CLIENT_ID.fullmatch(offered):
            request_id = offered.decode()
        else:
            request_id = new_request_id()
        ctx = RequestContext(request_id=request_id, headers=headers, started=time.perf_counter())
        scope[CONTEXT_KEY] = ctx
        return ctx

    @staticmethod
    async def _last_resort(ctx: RequestContext, send: Send) -> None:
        """An exception nobody handled: log it with its trace, answer the envelope without."""
        _log.exception("unhandled_error", request_id=ctx.request_id)
        ctx.error_code = "internal_error"
        if ctx.response_started:
            return  # a response is under way: nothing valid can be appended to it
        await EdgeMiddleware._answer(ctx, send, GatewayError("internal_error"))

    @staticmethod
    async def _answer(ctx: RequestContext, send: Send, error: GatewayError) -> None:
        """The envelope of ``error``, from the edge itself (no router behind it)."""
        ctx.error_code = error.code
        status, headers, body = error_response(error, ctx.request_id)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _report(self, scope: Scope, ctx: RequestContext) -> None:
        """Telemetry: the request's metrics and its one access-log line."""
        duration = ctx.elapsed()
        # A client that went away before its answer is logged as 499, the de facto convention.
        status = 499 if ctx.disconnected else ctx.status
        self.metrics.observe_request(ctx.route, scope["method"], status, duration, ctx)
        if ctx.span is not None:
            assert self.tracing is not None
            self.tracing.end_request(ctx.span, ctx, scope["method"], status)
        log_access(
            {
                "request_id": ctx.request_id,
                "method": scope["method"],
                "route": ctx.route,
                "status": status,
                "duration_ms": round(duration * 1000, 3),
                "key": ctx.key_name,
                "error_code": ctx.error_code,
                "model": ctx.model_asked,
                "model_served": ctx.model_served,
                "provider": ctx.provider,
                "attempts": ctx.attempts,
                "stream": ctx.stream,
                "ttft_ms": None if ctx.ttft is None else round(ctx.ttft * 1000, 3),
                "prompt_tokens": ctx.prompt_tokens,
                "completion_tokens": ctx.completion_tokens,
                "replayed": ctx.replayed,
            }
        )
