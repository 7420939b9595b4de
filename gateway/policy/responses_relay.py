"""What each deployment of a Responses request is asked: its provider's own Responses API, or
chat.

A provider that speaks the Responses API natively (an ``openai`` provider with
``responses_api = true``) gets the Responses body itself, routed to its model; any other gets
the chat translation the relay was given. A plan can mix both, so retries and fallback move
between them freely; the answer says which one it is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, cast

from gateway.policy.relay import FirstChunk, first_batch
from providers.base import JSON, ChatAdapter, ChatCall


class ResponsesSpeaker(Protocol):
    """An adapter that also speaks OpenAI's Responses API."""

    speaks_responses: bool

    async def respond(self, call: ChatCall) -> JSON: ...

    def respond_stream(self, call: ChatCall) -> AsyncIterator[list[JSON]]: ...


def speaker(adapter: ChatAdapter) -> ResponsesSpeaker | None:
    if getattr(adapter, "speaks_responses", False):
        return cast(ResponsesSpeaker, adapter)
    return None


class ResponsesCalls:
    """The relay attempts of one Responses request: ``(native, answer)`` results."""

    __slots__ = ("_body",)

    def __init__(self, native_body: JSON) -> None:
        self._body = native_body

    def _native_call(self, routed: ChatCall) -> ChatCall:
        return ChatCall(
            self._body,
            routed.upstream_model,
            routed.request_id,
            routed.stream,
            False,
            routed.deadline,
        )

    async def complete(self, adapter: ChatAdapter, routed: ChatCall) -> tuple[bool, JSON]:
        native = speaker(adapter)
        if native is None:
            return False, await adapter.complete(routed)
        return True, await native.respond(self._native_call(routed))

    async def open_stream(self, adapter: ChatAdapter, routed: ChatCall) -> tuple[bool, FirstChunk]:
        native = speaker(adapter)
        if native is None:
            return False, await first_batch(adapter.stream(routed))
        return True, await first_batch(native.respond_stream(self._native_call(routed)))
