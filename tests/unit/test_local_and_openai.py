"""The offline provider and the OpenAI-compatible translation, without any network."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from providers.base import ChatCall, ProviderSettings, UpstreamError
from providers.chat.local import LocalAdapter
from providers.chat.openai_compat import build_request, error_from_response, parse_chunk
from providers.http.framing import parse_retry_after
from providers.scrub import clean_message
from providers.tokens import count_messages, count_text


def call(body: dict[str, Any], *, stream: bool = False, usage: bool = False) -> ChatCall:
    return ChatCall(body, "up-model", "req_1", stream=stream, include_usage=usage)


def collect(adapter: LocalAdapter, chat: ChatCall) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        return [chunk async for batch in adapter.stream(chat) for chunk in batch]

    return asyncio.run(run())


LOCAL = LocalAdapter(ProviderSettings(name="local", kind="local"))
MESSAGES = [{"role": "user", "content": "Write a haiku about gateways."}]


def test_local_is_deterministic_and_counts_its_tokens() -> None:
    first = asyncio.run(LOCAL.complete(call({"messages": MESSAGES})))
    second = asyncio.run(LOCAL.complete(call({"messages": MESSAGES})))
    assert first["choices"] == second["choices"]
    other = asyncio.run(LOCAL.complete(call({"messages": MESSAGES, "seed": 9})))
    assert other["choices"][0]["message"]["content"] != first["choices"][0]["message"]["content"]
    text = first["choices"][0]["message"]["content"]
    assert "haiku about gateways" in text
    usage = first["usage"]
    assert usage["completion_tokens"] == count_text(text)
    assert usage["prompt_tokens"] == count_messages(MESSAGES)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_local_respects_max_tokens_stop_and_n() -> None:
    answer = asyncio.run(LOCAL.complete(call({"messages": MESSAGES, "max_tokens": 3, "n": 2})))
    assert [c["finish_reason"] for c in answer["choices"]] == ["length", "length"]
    assert answer["usage"]["completion_tokens"] == 6
    stopped = asyncio.run(LOCAL.complete(call({"messages": MESSAGES, "stop": "haiku"})))
    assert stopped["choices"][0]["message"]["content"] == "Offline reply to: Write a"


def test_local_stream_equals_sync_answer() -> None:
    body = {"messages": MESSAGES}
    answer = asyncio.run(LOCAL.complete(call(body)))
    chunks = collect(LOCAL, call(body, stream=True, usage=True))
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == answer["choices"][0]["message"]["content"]
    assert chunks[-1]["usage"] == answer["usage"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


def test_openai_request_swaps_model_and_asks_for_stream_usage() -> None:
    body = {"model": "auto", "messages": MESSAGES, "stream": True, "user": "u1"}
    sent = orjson.loads(build_request(call(body, stream=True), stream_usage=True))
    assert sent["model"] == "up-model" and sent["user"] == "u1"
    assert sent["stream_options"] == {"include_usage": True}
    assert body["model"] == "auto"  # the client's body is not mutated
    plain = orjson.loads(build_request(call(body, stream=True), stream_usage=False))
    assert "stream_options" not in plain
    sync = orjson.loads(build_request(call({**body, "stream": False}), stream_usage=True))
    assert "stream" not in sync and "stream_options" not in sync


@pytest.mark.parametrize(
    ("status", "headers", "kind", "retry_after"),
    [
        (400, {}, "client_error", None),
        (422, {}, "client_error", None),
        (401, {}, "auth", None),
        (403, {}, "auth", None),
        (404, {}, "server", None),
        (429, {"retry-after": "7"}, "rate_limited", 7.0),
        (429, {"retry-after-ms": "250", "retry-after": "7"}, "rate_limited", 0.25),
        (500, {}, "server", None),
        (503, {}, "server", None),
        (504, {}, "timeout", None),
    ],
)
def test_openai_error_classification(
    status: int, headers: dict[str, str], kind: str, retry_after: float | None
) -> None:
    body = orjson.dumps(
        {"error": {"message": "see https://internal.example/x key sk-abcdef123456"}}
    )
    error = error_from_response(status, body, headers)
    assert error.kind == kind and error.retry_after == retry_after
    assert "internal.example" not in error.message and "sk-abcdef" not in error.message


def test_stream_chunk_parsing() -> None:
    assert parse_chunk(b"[DONE]") is None
    assert parse_chunk(b'{"choices": []}') == {"choices": []}
    for bad in (b"{oops", b"[1]", b'{"error": {"message": "overloaded"}}'):
        with pytest.raises(UpstreamError):
            parse_chunk(bad)


def test_retry_after_forms() -> None:
    assert parse_retry_after({}) is None
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({"retry-after": "-3"}) == 0.0
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0


def test_clean_message_bounds_and_redacts() -> None:
    assert clean_message("x" * 2000) == "x" * 500
    assert clean_message("call http://10.0.0.5:8000/v1 with api_ABCDEFGHIJK") == (
        "call [url] with [redacted]"
    )
