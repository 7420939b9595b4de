"""AnthropicAdapter against the fake Anthropic server over real sockets, faults included."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from providers.base import JSON, ChatCall, ProviderSettings, UpstreamError
from providers.chat.anthropic import AnthropicAdapter
from tests.conftest import wait_until
from tests.fakes.anthropic_upstream import REPLY_WORDS, TOOL_USE_ID, make_app
from tests.fakes.faults import FaultPlan
from tests.fakes.server import serve_aiohttp

T = TypeVar("T")
API_KEY = "test-key"
MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Say hello."},
]


@pytest.fixture
def plan() -> FaultPlan:
    return FaultPlan()


@pytest.fixture
def url(plan: FaultPlan) -> Iterator[str]:
    with serve_aiohttp(make_app(plan, api_key=API_KEY)) as base_url:
        yield base_url


def settings(url: str, read_timeout: float = 2.0, **options: Any) -> ProviderSettings:
    return ProviderSettings(
        name="anthropic",
        kind="anthropic",
        base_url=url,
        api_key=API_KEY,
        read_timeout=read_timeout,
        options=options,
    )


def call(*, stream: bool = False, **body: Any) -> ChatCall:
    return ChatCall(
        body={"model": "claude", "messages": MESSAGES, **body},
        upstream_model="claude-sonnet-4-5",
        request_id="req-test-1",
        stream=stream,
    )


def run(
    url: str,
    action: Callable[[AnthropicAdapter], Awaitable[T]],
    read_timeout: float = 2.0,
    **options: Any,
) -> T:
    """Start an adapter, run ``action`` with it in a fresh event loop, close it."""

    async def main() -> T:
        adapter = AnthropicAdapter(settings(url, read_timeout, **options))
        await adapter.start()
        try:
            return await action(adapter)
        finally:
            await adapter.close()

    return asyncio.run(main())


def collect(
    chat: ChatCall, into: list[JSON] | None = None
) -> Callable[[AnthropicAdapter], Awaitable[list[JSON]]]:
    """An action that streams ``chat``, keeping chunks in ``into`` even if the stream fails."""
    chunks = into if into is not None else []

    async def action(adapter: AnthropicAdapter) -> list[JSON]:
        async for batch in adapter.stream(chat):
            chunks.extend(batch)
        return chunks

    return action


def failure(url: str, action: Callable[[AnthropicAdapter], Awaitable[Any]]) -> UpstreamError:
    with pytest.raises(UpstreamError) as info:
        run(url, action)
    return info.value


def complete(chat: ChatCall) -> Callable[[AnthropicAdapter], Awaitable[JSON]]:
    return lambda adapter: adapter.complete(chat)


def text_of(chunks: list[JSON]) -> str:
    return "".join(choice["delta"].get("content") or "" for c in chunks for choice in c["choices"])


# --- success -----------------------------------------------------------------------------------


def test_complete_returns_a_chat_completion(url: str, plan: FaultPlan) -> None:
    answer = run(url, complete(call()))
    assert answer["object"] == "chat.completion"
    assert answer["id"].startswith("chatcmpl-msg_fake")
    assert answer["choices"][0]["message"]["content"] == "".join(REPLY_WORDS)
    assert answer["choices"][0]["finish_reason"] == "stop"
    usage = answer["usage"]
    assert usage["completion_tokens"] == len(REPLY_WORDS)
    assert usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    sent = plan.requests[0]
    assert sent.path == "/v1/messages"
    assert sent.body["system"] == "Be brief."
    assert sent.body["model"] == "claude-sonnet-4-5"
    assert sent.body["max_tokens"] == 4096
    assert "stream" not in sent.body


def test_request_headers(url: str, plan: FaultPlan) -> None:
    run(url, complete(call()))
    headers = plan.requests[0].headers
    assert headers["x-api-key"] == API_KEY
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["x-request-id"] == "req-test-1"
    assert headers["content-type"] == "application/json"
    assert "authorization" not in headers


def test_options_override_version_and_default_max_tokens(url: str, plan: FaultPlan) -> None:
    answer = run(url, complete(call()), anthropic_version="2023-01-01", default_max_tokens=3)
    assert plan.requests[0].headers["anthropic-version"] == "2023-01-01"
    assert plan.requests[0].body["max_tokens"] == 3
    assert answer["choices"][0]["finish_reason"] == "length"
    assert answer["usage"]["completion_tokens"] == 3


def test_stream_concatenates_to_the_fake_text_with_usage_last(url: str, plan: FaultPlan) -> None:
    chunks = run(url, collect(call(stream=True)))
    assert plan.requests[0].body["stream"] is True
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert text_of(chunks) == "".join(REPLY_WORDS[: plan.chunk_count])
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == plan.chunk_count
    assert chunks[-1]["usage"]["prompt_tokens"] > 0
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    wait_until(lambda: plan.completed_streams == 1)  # noted just after the last write


def test_forced_tool_call_sync_and_stream(url: str) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    answer = run(url, complete(call(tools=tools, tool_choice="required")))
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["id"] == TOOL_USE_ID
    assert choice["message"]["tool_calls"][0]["function"]["arguments"] == '{"city":"Paris"}'

    chunks = run(url, collect(call(stream=True, tools=tools, tool_choice="required")))
    calls = [
        tc
        for c in chunks
        for choice in c["choices"]
        for tc in choice["delta"].get("tool_calls", [])
    ]
    assert calls[0]["function"]["name"] == "get_weather"
    assert "".join(tc["function"]["arguments"] for tc in calls) == '{"city": "Paris"}'
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


# --- upstream errors ---------------------------------------------------------------------------


def test_wrong_key_is_auth(plan: FaultPlan) -> None:
    with serve_aiohttp(make_app(plan, api_key="another-key")) as other:
        error = failure(other, complete(call()))
    assert (error.kind, error.status) == ("auth", 401)


def test_401_status_fault_is_auth_in_both_modes(url: str, plan: FaultPlan) -> None:
    plan.push("status", times=2, status=401)
    assert failure(url, complete(call())).kind == "auth"
    assert failure(url, collect(call(stream=True))).kind == "auth"


def test_429_with_retry_after_is_rate_limited(url: str, plan: FaultPlan) -> None:
    plan.push("status", status=429, headers={"retry-after": "3"})
    error = failure(url, complete(call()))
    assert (error.kind, error.retry_after, error.status) == ("rate_limited", 3.0, 429)


def test_529_overloaded_is_server(url: str, plan: FaultPlan) -> None:
    plan.push("status", times=2, status=529, message="Overloaded")
    for action in (complete(call()), collect(call(stream=True))):
        error = failure(url, action)
        assert (error.kind, error.status, error.retryable) == ("server", 529, True)


def test_400_keeps_the_provider_message(url: str, plan: FaultPlan) -> None:
    plan.push("status", status=400, message="messages: roles must alternate")
    error = failure(url, complete(call()))
    assert (error.kind, error.message) == ("client_error", "messages: roles must alternate")


def test_reset_is_connect(url: str, plan: FaultPlan) -> None:
    plan.push("reset", times=2)
    assert failure(url, complete(call())).kind == "connect"
    assert failure(url, collect(call(stream=True))).kind == "connect"


def test_malformed_is_server(url: str, plan: FaultPlan) -> None:
    plan.push("malformed", times=2, after=4)
    assert failure(url, complete(call())).kind == "server"
    chunks: list[JSON] = []
    assert failure(url, collect(call(stream=True), chunks)).kind == "server"
    assert text_of(chunks) == REPLY_WORDS[0]


def test_slow_answer_within_timeout_succeeds(url: str, plan: FaultPlan) -> None:
    plan.push("slow", delay=0.2)
    assert run(url, complete(call()))["choices"][0]["message"]["content"]


def test_cut_mid_stream_raises_after_some_chunks(url: str, plan: FaultPlan) -> None:
    plan.push("cut", after=5)
    chunks: list[JSON] = []
    error = failure(url, collect(call(stream=True), chunks))
    assert error.kind == "connect"
    assert text_of(chunks) == "".join(REPLY_WORDS[:2])


def test_client_leaving_closes_the_upstream_stream(url: str, plan: FaultPlan) -> None:
    plan.chunk_gap = 0.05

    async def leave_early(adapter: AnthropicAdapter) -> int:
        stream = adapter.stream(call(stream=True))
        assert isinstance(stream, AsyncGenerator)
        async for _ in stream:
            break
        await stream.aclose()
        for _ in range(100):
            if plan.cancelled_streams:
                break
            await asyncio.sleep(0.02)
        return plan.cancelled_streams

    assert run(url, leave_early) == 1
    assert plan.completed_streams == 0


def test_no_message_stop_raises(url: str, plan: FaultPlan) -> None:
    plan.push("no_done")
    chunks: list[JSON] = []
    error = failure(url, collect(call(stream=True), chunks))
    assert error.kind == "server"
    assert "ended early" in error.message
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"  # everything but message_stop


def test_stall_mid_stream_times_out(url: str, plan: FaultPlan) -> None:
    plan.push("stall", after=4)
    chunks: list[JSON] = []
    with pytest.raises(UpstreamError) as info:
        run(url, collect(call(stream=True), chunks), read_timeout=0.3)
    assert info.value.kind == "timeout"
    assert text_of(chunks) == REPLY_WORDS[0]


def test_n_greater_than_one_never_reaches_the_provider(url: str, plan: FaultPlan) -> None:
    error = failure(url, complete(call(n=2)))
    assert error.kind == "client_error"
    assert plan.calls == 0
