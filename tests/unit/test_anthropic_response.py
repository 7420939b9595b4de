"""Anthropic answers, stream events and errors -> OpenAI shapes, on recorded-style bodies."""

from __future__ import annotations

import orjson
import pytest

from providers.base import JSON, UpstreamError
from providers.chat.anthropic_response import (
    StreamTranslator,
    error_from_response,
    parse_event,
    parse_message,
)

MODEL = "claude-sonnet-4-5"
MODEL = "claude-sonnet-4-5"

# --- sync answer -------------------------------------------------------------------------------


def message(content: list[JSON], stop_reason: str = "end_turn", **usage: int) -> bytes:
    return orjson.dumps(
        {
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 6, **usage},
        }
    )


def test_text_message_maps_to_chat_completion() -> None:
    out = parse_message(message([{"type": "text", "text": "Hello!"}]), "my-model")
    assert out["id"] == "chatcmpl-msg_01XFDUDYJgAACzvnptvVoYEL"
    assert out["object"] == "chat.completion"
    assert isinstance(out["created"], int)
    assert out["model"] == "my-model"
    assert out["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello!", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert out["usage"] == {
        "prompt_tokens": 12,
        "completion_tokens": 6,
        "total_tokens": 18,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


def test_tool_use_message_maps_to_tool_calls() -> None:
    raw = message(
        [
            {
                "type": "tool_use",
                "id": "toolu_01A",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
            {"type": "tool_use", "id": "toolu_01B", "name": "now", "input": {}},
        ],
        "tool_use",
    )
    choice = parse_message(raw, MODEL)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {
            "id": "toolu_01A",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        },
        {"id": "toolu_01B", "type": "function", "function": {"name": "now", "arguments": "{}"}},
    ]


def test_text_with_tool_use_keeps_the_text() -> None:
    raw = message(
        [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "t", "name": "now", "input": {}},
        ],
        "tool_use",
    )
    msg = parse_message(raw, MODEL)["choices"][0]["message"]
    assert msg["content"] == "Checking."
    assert len(msg["tool_calls"]) == 1


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
    ],
)
def test_every_stop_reason_maps(stop_reason: str, finish: str) -> None:
    raw = message([{"type": "text", "text": "x"}], stop_reason)
    assert parse_message(raw, MODEL)["choices"][0]["finish_reason"] == finish


def test_usage_counts_cache_tokens_as_prompt_tokens_and_reads_as_cached() -> None:
    raw = message(
        [{"type": "text", "text": "x"}],
        cache_creation_input_tokens=100,
        cache_read_input_tokens=2000,
    )
    assert parse_message(raw, MODEL)["usage"] == {
        "prompt_tokens": 2112,
        "completion_tokens": 6,
        "total_tokens": 2118,
        "prompt_tokens_details": {"cached_tokens": 2000},
    }


@pytest.mark.parametrize(
    "raw",
    [
        b'{"id": "msg_1", "type": "message", "content": [',
        b"[]",
        b'{"type": "error", "error": {"type": "api_error", "message": "boom"}}',
        b'{"type": "message", "content": "text"}',
    ],
)
def test_malformed_or_wrong_shaped_bodies_are_server_errors(raw: bytes) -> None:
    with pytest.raises(UpstreamError) as info:
        parse_message(raw, MODEL)
    assert info.value.kind == "server"


# --- stream ------------------------------------------------------------------------------------

MESSAGE_START: JSON = {
    "type": "message_start",
    "message": {
        "id": "msg_014p7gG3wDgGV9EUtLvnow3U",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 472,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 28,
            "output_tokens": 2,
        },
    },
}


def feed_all(events: list[JSON]) -> tuple[StreamTranslator, list[JSON]]:
    translator = StreamTranslator("my-model", created=1700000000)
    chunks: list[JSON] = []
    for event in events:
        chunks += translator.feed(event)
    return translator, chunks


def chunk(delta: JSON, finish: str | None = None) -> JSON:
    return {
        "id": "chatcmpl-msg_014p7gG3wDgGV9EUtLvnow3U",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "my-model",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def test_text_stream_maps_to_chunks_with_usage_last() -> None:
    events: list[JSON] = [
        MESSAGE_START,
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Hello"},
        },
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 15},
        },
        {"type": "message_stop"},
    ]
    translator, chunks = feed_all(events)
    assert translator.finished
    assert chunks == [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hello"}),
        chunk({"content": "!"}),
        chunk({}, "stop"),
        {
            "id": "chatcmpl-msg_014p7gG3wDgGV9EUtLvnow3U",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "my-model",
            "choices": [],
            "usage": {
                "prompt_tokens": 500,
                "completion_tokens": 15,
                "total_tokens": 515,
                "prompt_tokens_details": {"cached_tokens": 28},
            },
        },
    ]


def test_tool_use_stream_maps_to_tool_call_deltas() -> None:
    events: list[JSON] = [
        MESSAGE_START,
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Let me check."},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {
                "type": "tool_use",
                "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                "name": "get_weather",
                "input": {},
            },
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": ""},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"location": "San Fra'},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": 'ncisco, CA"}'},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 89},
        },
        {"type": "message_stop"},
    ]
    translator, chunks = feed_all(events)
    assert translator.finished
    assert chunks[:-1] == [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Let me check."}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"location": "San Fra'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ncisco, CA"}'}}]}),
        chunk({}, "tool_calls"),
    ]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 89


def test_stream_without_message_delta_still_finishes_and_reports_usage() -> None:
    translator, chunks = feed_all([MESSAGE_START, {"type": "message_stop"}])
    assert translator.finished
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["prompt_tokens"] == 500


def test_unknown_events_and_events_after_stop_are_ignored() -> None:
    translator, chunks = feed_all(
        [MESSAGE_START, {"type": "something_new", "x": 1}, {"type": "message_stop"}]
    )
    assert translator.feed({"type": "ping"}) == []
    assert len(chunks) == 3


@pytest.mark.parametrize(
    ("kind", "text"),
    [("overloaded_error", "Overloaded"), ("api_error", "Internal server error")],
)
def test_error_event_raises_server_error(kind: str, text: str) -> None:
    translator = StreamTranslator(MODEL)
    translator.feed(MESSAGE_START)
    with pytest.raises(UpstreamError) as info:
        translator.feed({"type": "error", "error": {"type": kind, "message": text}})
    assert info.value.kind == "server"
    assert info.value.message == text
    assert not translator.finished


def test_parse_event_rejects_non_json() -> None:
    assert parse_event(b'{"type": "ping"}') == {"type": "ping"}
    for raw in (b"{not json", b'"ping"'):
        with pytest.raises(UpstreamError) as info:
            parse_event(raw)
        assert info.value.kind == "server"


# --- errors ------------------------------------------------------------------------------------


def error_body(kind: str, message: str) -> bytes:
    return orjson.dumps(
        {
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
        }
    )


def test_400_keeps_anthropic_message_as_client_error() -> None:
    error = error_from_response(
        400, error_body("invalid_request_error", "max_tokens: Field required"), {}
    )
    assert (error.kind, error.status, error.message) == (
        "client_error",
        400,
        "max_tokens: Field required",
    )


def test_401_is_auth() -> None:
    error = error_from_response(401, error_body("authentication_error", "invalid x-api-key"), {})
    assert (error.kind, error.retryable) == ("auth", False)


def test_429_is_rate_limited_with_retry_after() -> None:
    error = error_from_response(
        429, error_body("rate_limit_error", "Rate limited"), {"retry-after": "7"}
    )
    assert (error.kind, error.retry_after, error.retryable) == ("rate_limited", 7.0, True)


def test_529_overloaded_is_retryable_server() -> None:
    error = error_from_response(529, error_body("overloaded_error", "Overloaded"), {})
    assert (error.kind, error.status, error.retryable) == ("server", 529, True)


def test_500_and_non_json_bodies_are_server() -> None:
    error = error_from_response(500, error_body("api_error", "Internal server error"), {})
    assert (error.kind, error.retryable) == ("server", True)
    error = error_from_response(502, b"<html>Bad gateway</html>", {})
    assert error.kind == "server"


def test_error_messages_are_cleaned() -> None:
    error = error_from_response(
        400,
        error_body("invalid_request_error", "bad key sk-ant-abcdefghijkl see https://x.y/z"),
        {},
    )
    assert "sk-ant" not in error.message and "https://" not in error.message
