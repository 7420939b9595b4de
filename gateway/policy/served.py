"""What a relay run leaves on the request, shared by the chat-shaped endpoints.

Chat completions and Responses both serve a chat call through the relay: who answered, how many
attempts it took, the upstream seconds and the tokens reported go into the request's context
(the access log and the metrics read them there), the rate-limit reservation is settled with
what the answer really cost, and the answer carries the reservation's ``x-ratelimit-*`` headers.
"""

from __future__ import annotations

from typing import Any

from gateway.http.asgi import RawHeaders, RequestContext
from gateway.policy.ratelimit import Reservation
from gateway.policy.relay import RelayCanceled, Relayed, RelayFailed

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # tell nginx-style proxies in front not to buffer the stream
]


def record_usage(ctx: RequestContext, usage: Any) -> None:
    if isinstance(usage, dict):
        prompt = usage.get("prompt_tokens")
        completion = usage.get("completion_tokens")
        if isinstance(prompt, int):
            ctx.prompt_tokens = prompt
        if isinstance(completion, int):
            ctx.completion_tokens = completion


def relay_ended(ctx: RequestContext, ended: RelayFailed | RelayCanceled) -> BaseException:
    """What a relay run that got no answer leaves to raise, once what it took is logged."""
    ctx.attempts = ended.attempts
    ctx.upstream_seconds = ended.upstream_seconds
    return ended.error if isinstance(ended, RelayFailed) else ended


def relay_answered(ctx: RequestContext, relayed: Relayed[Any]) -> str:
    """Log who served the answer and what it took; the catalog id the answer is labelled with."""
    candidate, _, ctx.attempts, ctx.upstream_seconds = relayed
    ctx.provider = candidate.deployment.provider
    ctx.model_served = model_id = candidate.model.id
    return model_id


def answer_headers(base: RawHeaders, reservation: Reservation | None) -> RawHeaders:
    """The answer's headers: its own, then the rate limits' (``x-ratelimit-*``) if any."""
    return base if reservation is None else [*base, *reservation.headers]


def tokens_used(ctx: RequestContext) -> int | None:
    """What the answer really cost, for settling the reservation (None: unknown)."""
    if ctx.model_served is None:
        return 0  # nothing was produced: every reserved token goes back
    if ctx.prompt_tokens is None or ctx.completion_tokens is None:
        return None
    return ctx.prompt_tokens + ctx.completion_tokens
