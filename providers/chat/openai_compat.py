"""Adapter for any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp, Groq, ...):
chat completions and embeddings.

Our public API is OpenAI's, so this adapter is close to a pass-through: it swaps in the upstream
model id and asks for stream usage so the gateway can count tokens (the relay hides that usage
chunk again from a client that did not ask for it). Embeddings go to ``POST {base_url}/embeddings``
with the same error mapping as chat. Translation is pure functions; I/O goes through
``HttpUpstream``. A provider whose option ``responses_api`` says it speaks OpenAI's Responses API
is also sent Responses requests as they are (``respond``, ``respond_stream``; the wire format is
in ``openai_responses``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import ClassVar

import orjson

from providers.base import (
    JSON,
    ChatCall,
    FinalBatch,
    ProviderSettings,
    UpstreamError,
    call_headers,
    read_options,
)
from providers.chat.openai_responses import (
    TERMINAL_EVENTS,
    build_responses_request,
    parse_event,
    parse_response,
)
from providers.embeddings.base import inputs_of, normalise_answer
from providers.http.upstream import HttpUpstream
from providers.http.values import UpstreamOptions
from providers.scrub import STRUCTURAL, Scrubber
from providers.shared_wire import openai_error

# OpenAI's error bodies, classified as for its images adapter.
error_from_response = openai_error


def build_request(call: ChatCall, *, stream_usage: bool) -> bytes:
    """The upstream request body: the client's body with the provider's model id."""
    body = dict(call.body)
    body["model"] = call.upstream_model
    if call.stream:
        body["stream"] = True
        if stream_usage or call.include_usage:
            options = dict(body.get("stream_options") or {})
            options["include_usage"] = True
            body["stream_options"] = options
    else:
        body.pop("stream", None)
        body.pop("stream_options", None)
    return orjson.dumps(body)


def parse_completion(raw: bytes) -> JSON:
    """A sync answer, checked just enough that the gateway can rely on its shape."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError("server", "The provider returned malformed JSON.") from exc
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        raise UpstreamError("server", "The provider returned an unexpected body.")
    return data


def parse_chunk(raw: bytes, scrubber: Scrubber = STRUCTURAL) -> JSON | None:
    """One stream event; ``None`` for the ``[DONE]`` sentinel. An error event's text is
    cleaned by ``scrubber``, as an error response's is."""
    if raw == b"[DONE]":
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError("server", "The provider sent a malformed stream event.") from exc
    if not isinstance(data, dict):
        raise UpstreamError("server", "The provider sent an unexpected stream event.")
    if "error" in data and "choices" not in data:
        error = data["error"] if isinstance(data["error"], dict) else {}
        raise UpstreamError("server", scrubber.clean(str(error.get("message") or "stream error")))
    return data


@dataclass(frozen=True, slots=True)
class OpenAIOptions(UpstreamOptions):
    """The options of the ``openai`` kind."""

    # Some OpenAI-compatible servers reject stream_options; operators can turn it off.
    stream_usage: bool = True
    # The server also speaks POST /responses: Responses requests go to it as they are.
    responses_api: bool = False


class OpenAICompatAdapter:
    """Chat through ``POST {base_url}/chat/completions``."""

    kind = "openai"
    needs_base_url: ClassVar[bool] = True
    Options: ClassVar[type[OpenAIOptions]] = OpenAIOptions

    def __init__(self, settings: ProviderSettings) -> None:
        options = read_options(self.Options, settings.options)
        headers: dict[str, str] = {}
        if settings.api_key:
            headers["authorization"] = f"Bearer {settings.api_key}"
        self._http = HttpUpstream(settings, headers, options)
        self._stream_usage = options.stream_usage
        self.speaks_responses = options.responses_api

    async def start(self) -> None:
        await self._http.start()

    async def close(self) -> None:
        await self._http.close()

    async def complete(self, call: ChatCall) -> JSON:
        raw = await self._http.post_json(
            "/chat/completions",
            build_request(call, stream_usage=False),
            call_headers(call),
            error_from_response,
            call.deadline,
        )
        return parse_completion(raw)

    async def embed(self, call: ChatCall) -> JSON:
        body = dict(call.body)
        body["model"] = call.upstream_model
        raw = await self._http.post_json(
            "/embeddings",
            orjson.dumps(body),
            call_headers(call),
            error_from_response,
            call.deadline,
        )
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError("server", "The provider returned malformed JSON.") from exc
        encoding_format = body.get("encoding_format") or "float"
        return normalise_answer(answer, len(inputs_of(body)), encoding_format)

    async def stream(self, call: ChatCall) -> AsyncIterator[list[JSON]]:
        payload = build_request(call, stream_usage=self._stream_usage)
        scrubber = self._http.scrubber
        async with self._http.open_stream(
            "/chat/completions",
            payload,
            call_headers(call),
            error_from_response,
            call.deadline,
        ) as batches:
            async for raws in batches:
                chunks: list[JSON] = []
                for raw in raws:
                    try:
                        chunk = parse_chunk(raw, scrubber)
                    except UpstreamError:
                        if chunks:
                            yield chunks  # what came before the broken event still goes out
                        raise
                    if chunk is None:
                        if chunks:
                            yield FinalBatch(chunks)
                        return
                    chunks.append(chunk)
                yield chunks
        raise UpstreamError("server", "The provider's stream ended before [DONE].")

    async def respond(self, call: ChatCall) -> JSON:
        """A Responses request (``call.body``) answered by the provider's own Responses API."""
        raw = await self._http.post_json(
            "/responses",
            build_responses_request(call),
            {"x-request-id": call.request_id},
            error_from_response,
            call.deadline,
        )
        return parse_response(raw)

    async def respond_stream(self, call: ChatCall) -> AsyncIterator[list[JSON]]:
        """The provider's Responses events, in the batches they arrived in; the stream must
        reach ``response.completed`` or ``response.incomplete``."""
        scrubber = self._http.scrubber
        finished = False
        async with self._http.open_stream(
            "/responses",
            build_responses_request(call),
            {"x-request-id": call.request_id},
            error_from_response,
            call.deadline,
        ) as batches:
            async for raws in batches:
                events: list[JSON] = []
                for raw in raws:
                    try:
                        event = parse_event(raw, scrubber)
                    except UpstreamError:
                        if events:
                            yield events  # what came before the failure still goes out
                        raise
                    finished = finished or event["type"] in TERMINAL_EVENTS
                    events.append(event)
                if events:
                    yield events
        if not finished:
            raise UpstreamError("server", "The provider's stream ended before it completed.")
