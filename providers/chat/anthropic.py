"""Adapter for Anthropic's Messages API (``POST {base_url}/v1/messages``).

It owns the I/O side: the ``x-api-key`` and ``anthropic-version`` headers, the sync call and the
event stream, all through ``HttpUpstream``. The wire translation (OpenAI chat <-> Messages) is
pure and lives in ``providers.anthropic_request`` (the request body) and
``providers.anthropic_response`` (answers, stream events, errors); its public names are
re-exported here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import ClassVar

from providers.base import (
    JSON,
    ChatCall,
    FinalBatch,
    ProviderSettings,
    UpstreamError,
    call_headers,
    read_options,
)
from providers.chat.anthropic_fields import JSON_OBJECT_TOOL, wants_json_object
from providers.chat.anthropic_request import build_request
from providers.chat.anthropic_response import (
    FINISH_REASONS,
    StreamTranslator,
    error_from_response,
    finish_reason,
    openai_usage,
    parse_event,
    parse_message,
)
from providers.http.upstream import HttpUpstream
from providers.http.values import UpstreamOptions

__all__ = [
    "DEFAULT_ANTHROPIC_VERSION",
    "DEFAULT_MAX_TOKENS",
    "FINISH_REASONS",
    "MESSAGES_PATH",
    "AnthropicAdapter",
    "StreamTranslator",
    "build_request",
    "error_from_response",
    "finish_reason",
    "openai_usage",
    "parse_event",
    "parse_message",
]

DEFAULT_ANTHROPIC_VERSION = "2023-06-01"
# Anthropic requires max_tokens; OpenAI clients usually leave it out.
DEFAULT_MAX_TOKENS = 4096
MESSAGES_PATH = "/v1/messages"


def _json_tool(call: ChatCall) -> str | None:
    """The tool whose input is the answer, for a json_object request (see anthropic_fields)."""
    return JSON_OBJECT_TOOL if wants_json_object(call.body) else None


@dataclasses.dataclass(frozen=True, slots=True)
class AnthropicOptions(UpstreamOptions):
    """The options of the ``anthropic`` kind."""

    anthropic_version: str = DEFAULT_ANTHROPIC_VERSION  # the anthropic-version header
    default_max_tokens: int = DEFAULT_MAX_TOKENS  # when the client gives none


class AnthropicAdapter:
    """Chat through Anthropic's Messages API; ``base_url`` is the host root."""

    kind = "anthropic"
    needs_base_url: ClassVar[bool] = True
    Options: ClassVar[type[AnthropicOptions]] = AnthropicOptions

    def __init__(self, settings: ProviderSettings) -> None:
        options = read_options(self.Options, settings.options)
        headers = {"anthropic-version": options.anthropic_version}
        if settings.api_key:
            headers["x-api-key"] = settings.api_key
        self._http = HttpUpstream(settings, headers, options)
        self._default_max_tokens = options.default_max_tokens

    async def start(self) -> None:
        await self._http.start()

    async def close(self) -> None:
        await self._http.close()

    async def complete(self, call: ChatCall) -> JSON:
        if call.stream:
            call = dataclasses.replace(call, stream=False)
        raw = await self._http.post_json(
            MESSAGES_PATH,
            build_request(call, self._default_max_tokens),
            call_headers(call),
            error_from_response,
            call.deadline,
        )
        return parse_message(raw, call.upstream_model, _json_tool(call))

    async def stream(self, call: ChatCall) -> AsyncIterator[list[JSON]]:
        if not call.stream:
            call = dataclasses.replace(call, stream=True)
        payload = build_request(call, self._default_max_tokens)
        translator = StreamTranslator(
            call.upstream_model, scrubber=self._http.scrubber, json_tool=_json_tool(call)
        )
        async with self._http.open_stream(
            MESSAGES_PATH,
            payload,
            call_headers(call),
            error_from_response,
            call.deadline,
        ) as batches:
            async for raws in batches:
                chunks: list[JSON] = []
                for raw in raws:
                    try:
                        chunks.extend(translator.feed(parse_event(raw)))
                    except UpstreamError:
                        if chunks:
                            yield chunks  # what came before the broken event still goes out
                        raise
                    if translator.finished:
                        break
                if chunks:
                    yield FinalBatch(chunks) if translator.finished else chunks
                if translator.finished:
                    return
        raise UpstreamError("server", "The provider's stream ended early, before message_stop.")
