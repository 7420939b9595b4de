"""OpenAI chat body -> Anthropic Messages request, on bodies shaped like recorded traffic."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from providers.base import JSON, ChatCall, UpstreamError
from providers.chat.anthropic_request import build_request

MODEL = "claude-sonnet-4-5"
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


def test_tool_choice_none_without_tools_is_a_no_op() -> None:
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
    assert error.param == "n"
    assert "only 1" in error.message
    assert request({"messages": [{"role": "user", "content": "Hi"}], "n": 1})["max_tokens"]


def test_unknown_roles_are_rejected() -> None:
    rejected({"messages": [{"role": "function", "name": "f", "content": "x"}]})
