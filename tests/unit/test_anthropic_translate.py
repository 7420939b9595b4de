"""The pure OpenAI <-> Anthropic Messages translation, on bodies shaped like recorded traffic."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from providers.anthropic_translate import (
    StreamTranslator,
    build_request,
    error_from_response,
    parse_event,
    parse_message,
)
from providers.base import JSON, ChatCall, UpstreamError

MODEL = "claude-sonnet-4-5"


def request(body: JSON, *, stream: bool = False, default_max_tokens: int = 4096) -> Any:
    call = ChatCall(body=body, upstream_model=MODEL, request_id="req-1", stream=stream)
    return orjson.loads(build_request(call, default_max_tokens))


def rejected(body: JSON) -> UpstreamError:
    with pytest.raises(UpstreamError) as info:
        request(body)
    assert info.value.kind == "client_error"
    return info.value


# --- request -----------------------------------------------------------------------------------


def test_minimal_request_uses_upstream_model_and_default_max_tokens() -> None:
    out = request({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]})
    assert out == {
        "model": MODEL,
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
    }


def test_system_and_developer_messages_become_the_system_prompt() -> None:
    out = request(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
                {"role": "user", "content": "Hi"},
                {"role": "system", "content": "No emojis."},
            ]
        }
    )
    assert out["system"] == "Be brief.\n\nAnswer in French.\n\nNo emojis."
    assert [m["role"] for m in out["messages"]] == ["user"]


def test_consecutive_same_role_messages_are_merged() -> None:
    out = request(
        {
            "messages": [
                {"role": "user", "content": "One"},
                {"role": "user", "content": [{"type": "text", "text": "Two"}]},
                {"role": "assistant", "content": "Three"},
                {"role": "assistant", "content": "Four"},
                {"role": "user", "content": "Five"},
            ]
        }
    )
    assert out["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "One"}, {"type": "text", "text": "Two"}],
        },
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "Three"}, {"type": "text", "text": "Four"}],
        },
        {"role": "user", "content": [{"type": "text", "text": "Five"}]},
    ]


def test_empty_messages_are_dropped_and_only_system_is_rejected() -> None:
    out = request(
        {
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": ""},
                {"role": "user", "content": "Again"},
            ]
        }
    )
    assert len(out["messages"]) == 1
    assert len(out["messages"][0]["content"]) == 2
    rejected({"messages": [{"role": "system", "content": "Only a system prompt"}]})


def test_images_map_to_base64_and_url_sources() -> None:
    out = request(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/png;base64,iVBORw0K"},
                        },
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                    ],
                }
            ]
        }
    )
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url", "image_url": {"url": "ftp://example.com/a.png"}},
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
    ],
)
def test_unsupported_content_parts_are_client_errors(part: JSON) -> None:
    rejected({"messages": [{"role": "user", "content": [part]}]})


def test_tool_calls_and_tool_results_round_trip() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
            {
                "role": "tool",
                "tool_call_id": "call_2",
                "content": [{"type": "text", "text": "21C"}],
            },
            {"role": "user", "content": "Thanks, which is warmer?"},
        ]
    }
    original = copy.deepcopy(body)
    out = request(body)
    assert body == original  # the shared body is never mutated
    assert out["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "call_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "call_2",
                    "name": "get_weather",
                    "input": {"city": "Rome"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C, sunny"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "21C"},
                {"type": "text", "text": "Thanks, which is warmer?"},
            ],
        },
    ]


def test_assistant_text_and_tool_call_with_empty_arguments() -> None:
    out = request(
        {
            "messages": [
                {"role": "user", "content": "Time?"},
                {
                    "role": "assistant",
                    "content": "Let me check.",
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "now", "arguments": ""},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c", "content": "12:00"},
            ]
        }
    )
    assert out["messages"][1]["content"] == [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "c", "name": "now", "input": {}},
    ]


def test_tool_call_arguments_that_are_not_a_json_object_are_rejected() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1, 2"}}
    rejected(
        {
            "messages": [
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": None, "tool_calls": [call]},
            ]
        }
    )


def test_tools_and_tool_choice_mapping() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        },
        {"type": "function", "function": {"name": "now"}},
    ]
    messages = [{"role": "user", "content": "Hi"}]
    out = request({"messages": messages, "tools": tools})
    assert out["tools"] == [
        {
            "name": "get_weather",
            "input_schema": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
            "description": "Current weather for a city",
        },
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in out
    forced = {"type": "function", "function": {"name": "now"}}
    expected: list[tuple[Any, JSON]] = [
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        (forced, {"type": "tool", "name": "now"}),
    ]
    for choice, mapped in expected:
        out = request({"messages": messages, "tools": tools, "tool_choice": choice})
        assert out["tool_choice"] == mapped
    out = request({"messages": messages, "tools": tools, "parallel_tool_calls": False})
    assert out["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    rejected({"messages": messages, "tools": [{"type": "web_search"}]})
    rejected({"messages": messages, "tools": tools, "tool_choice": "sometimes"})


def test_tool_choice_without_tools_is_dropped() -> None:
    out = request({"messages": [{"role": "user", "content": "Hi"}], "tool_choice": "none"})
    assert "tool_choice" not in out and "tools" not in out


@pytest.mark.parametrize(("given", "sent"), [(0, 0.0), (0.7, 0.7), (1, 1.0), (1.8, 1.0), (-1, 0.0)])
def test_temperature_is_clamped_to_anthropic_range(given: float, sent: float) -> None:
    out = request({"messages": [{"role": "user", "content": "Hi"}], "temperature": given})
    assert out["temperature"] == sent


def test_sampling_stop_user_and_stream() -> None:
    out = request(
        {
            "messages": [{"role": "user", "content": "Hi"}],
            "top_p": 0.9,
            "stop": "END",
            "user": "user-42",
            "max_completion_tokens": 100,
            "max_tokens": 50,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        stream=True,
    )
    assert out["top_p"] == 0.9
    assert out["stop_sequences"] == ["END"]
    assert out["metadata"] == {"user_id": "user-42"}
    assert out["max_tokens"] == 100
    assert out["stream"] is True
    assert "stream_options" not in out and "stop" not in out and "user" not in out


def test_stop_list_max_tokens_and_no_op_top_p() -> None:
    out = request(
        {
            "messages": [{"role": "user", "content": "Hi"}],
            "stop": ["\n\n", "Human:"],
            "max_tokens": 50,
            "temperature": 0.5,
            "top_p": 1,
        },
        default_max_tokens=9,
    )
    assert out["stop_sequences"] == ["\n\n", "Human:"]
    assert out["max_tokens"] == 50
    assert "top_p" not in out  # newer models reject temperature with top_p; 1 changes nothing
    assert "stream" not in out


def test_max_tokens_default_comes_from_the_adapter() -> None:
    out = request({"messages": [{"role": "user", "content": "Hi"}]}, default_max_tokens=123)
    assert out["max_tokens"] == 123


def test_n_greater_than_one_is_rejected() -> None:
    error = rejected({"messages": [{"role": "user", "content": "Hi"}], "n": 2})
    assert "n > 1" in error.message
    assert request({"messages": [{"role": "user", "content": "Hi"}], "n": 1})["max_tokens"]


def test_unknown_roles_are_rejected() -> None:
    rejected({"messages": [{"role": "function", "name": "f", "content": "x"}]})


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
    assert out["usage"] == {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}


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


def test_usage_counts_cache_tokens_as_prompt_tokens() -> None:
    raw = message(
        [{"type": "text", "text": "x"}],
        cache_creation_input_tokens=100,
        cache_read_input_tokens=2000,
    )
    assert parse_message(raw, MODEL)["usage"] == {
        "prompt_tokens": 2112,
        "completion_tokens": 6,
        "total_tokens": 2118,
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
            "usage": {"prompt_tokens": 500, "completion_tokens": 15, "total_tokens": 515},
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
