"""Responses request -> chat request translation, on bodies shaped as OpenAI's SDKs send them."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.contract.errors import GatewayError
from gateway.contract.responses_request import chat_body, read_request

# A second turn as the Agents SDK sends it (openai-agents 0.24, one function tool): the user's
# message, the model's earlier output items dumped back with their descriptive fields, and the
# tool's result.
AGENT_TURN: dict[str, Any] = {
    "instructions": "You answer weather questions.",
    "model": "gpt-test",
    "input": [
        {"content": "What is the weather in Paris?", "role": "user"},
        {
            "arguments": '{"city":"Paris"}',
            "call_id": "call_abc",
            "name": "get_weather",
            "type": "function_call",
            "id": "fc_01",
            "status": "completed",
            "namespace": None,
        },
        {"call_id": "call_abc", "output": "Sunny, 21C", "type": "function_call_output"},
    ],
    "include": [],
    "tools": [
        {
            "name": "get_weather",
            "parameters": {
                "properties": {"city": {"title": "City", "type": "string"}},
                "required": ["city"],
                "title": "get_weather_args",
                "type": "object",
                "additionalProperties": False,
            },
            "strict": True,
            "type": "function",
            "description": "The weather in a city.",
        }
    ],
    "tool_choice": "auto",
    "parallel_tool_calls": False,
    "stream": False,
}


BUILT_IN_TOOLS: list[dict[str, Any]] = [
    {"type": "web_search"},
    {"type": "web_search_preview"},
    {"type": "file_search", "vector_store_ids": ["vs_1"]},
    {"type": "computer_use_preview", "display_width": 1, "display_height": 1},
    {"type": "code_interpreter", "container": {"type": "auto"}},
    {"type": "mcp", "server_label": "x"},
    {"type": "image_generation"},
]
BAD_FIELDS: list[tuple[dict[str, Any], list[str]]] = [
    ({"frobnicate": 1}, ["frobnicate"]),
    ({"messages": []}, ["messages"]),
    ({"temperature": 3}, ["temperature"]),
    ({"top_p": -1}, ["top_p"]),
    ({"max_output_tokens": 8}, ["max_output_tokens"]),
    ({"stream": "yes"}, ["stream"]),
    ({"store": 1}, ["store"]),
    ({"instructions": ["x"]}, ["instructions"]),
    ({"metadata": {"k": 1}}, ["metadata"]),
    ({"include": ["message.output_text.logprobs"]}, ["include"]),
    ({"background": True}, ["background"]),
    ({"truncation": "auto"}, ["truncation"]),
    ({"conversation": "conv_1"}, ["conversation"]),
    ({"prompt": {"id": "p"}}, ["prompt"]),
    ({"top_logprobs": 2}, ["top_logprobs"]),
    ({"tool_choice": {"type": "web_search_preview"}}, ["tool_choice"]),
    ({"tool_choice": {"type": "function"}}, ["tool_choice.name"]),
    ({"text": {"format": {"type": "xml"}}}, ["text.format.type"]),
    ({"text": {"format": {"type": "json_schema"}}}, ["text.format.name", "text.format.schema"]),
    ({"text": {"colour": "red"}}, ["text.colour"]),
    ({"reasoning": {"summary": "auto"}}, ["reasoning.summary"]),
    ({"stream_options": {"include_obfuscation": False}}, ["stream_options"]),
    ({"previous_response_id": ""}, ["previous_response_id"]),
    ({"tools": [{"type": "function"}]}, ["tools[0].name"]),
    ({"tools": [{"type": "function", "name": "f", "parameters": []}]}, ["tools[0].parameters"]),
    ({"tools": [{"type": "function", "name": "f", "colour": 1}]}, ["tools[0].colour"]),
]
BAD_ITEMS: list[tuple[Any, list[str]]] = [
    ([], ["input"]),
    (42, ["input"]),
    (["hi"], ["input[0]"]),
    ([{"role": "tool", "content": "x"}], ["input[0].role"]),
    ([{"role": "user", "content": []}], ["input[0].content"]),
    (
        [{"role": "user", "content": [{"type": "output_text", "text": "x"}]}],
        ["input[0].content[0].type"],
    ),
    (
        [{"role": "assistant", "content": [{"type": "input_text", "text": "x"}]}],
        ["input[0].content[0].type"],
    ),
    (
        [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}],
        ["input[0].content[0].type"],
    ),
    (
        [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}],
        ["input[0].content[0].file_id"],
    ),
    ([{"type": "reasoning", "summary": []}], ["input[0].type"]),
    ([{"type": "item_reference", "id": "msg_1"}], ["input[0].type"]),
    ([{"type": "web_search_call", "id": "ws_1"}], ["input[0].type"]),
    ([{"type": "function_call", "name": "f", "arguments": "{}"}], ["input[0].call_id"]),
    ([{"type": "function_call_output", "call_id": "c", "output": 3}], ["input[0].output"]),
    (
        [
            {
                "type": "function_call",
                "call_id": "c",
                "name": "f",
                "arguments": "{}",
                "namespace": "n",
            }
        ],
        ["input[0].namespace"],
    ),
    ([{"role": "user", "content": "x", "colour": "red"}], ["input[0].colour"]),
]


def problems(body: dict[str, Any]) -> list[str]:
    with pytest.raises(GatewayError) as caught:
        read_request(body)
    assert caught.value.code == "invalid_request" and caught.value.status == 400
    return [d["field"] for d in caught.value.details or []]


def test_a_string_input_is_one_user_message_after_the_instructions() -> None:
    request = read_request({"model": "auto", "input": "Hi", "instructions": "Be brief."})
    chat = chat_body(request)
    assert chat.body == {
        "model": "auto",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ],
    }
    assert not chat.stream and chat.include_usage
    assert request.store  # OpenAI's default: stored unless store is false


def test_an_agent_turn_maps_tools_calls_and_results() -> None:
    chat = chat_body(read_request(AGENT_TURN)).body
    assert chat["messages"] == [
        {"role": "system", "content": "You answer weather questions."},
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_abc", "content": "Sunny, 21C"},
    ]
    tool = AGENT_TURN["tools"][0]
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city.",
                "parameters": tool["parameters"],
                "strict": True,
            },
        }
    ]
    assert chat["tool_choice"] == "auto" and chat["parallel_tool_calls"] is False


def test_content_parts_roles_and_assistant_text_before_calls() -> None:
    body = {
        "model": "m",
        "input": [
            {"type": "message", "role": "developer", "content": "Rules."},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Look:"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
                ],
            },
            {
                "type": "message",
                "role": "assistant",
                "id": "msg_1",
                "status": "completed",
                "phase": None,
                "content": [
                    {
                        "type": "output_text",
                        "text": "Let me check.",
                        "annotations": [],
                        "logprobs": [],
                    }
                ],
            },
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{}"},
            {
                "type": "function_call_output",
                "call_id": "c1",
                "output": [{"type": "input_text", "text": "one"}],
            },
            {"type": "function_call_output", "call_id": "c2", "output": "two"},
        ],
    }
    messages = chat_body(read_request(body)).body["messages"]
    assert messages[0] == {"role": "developer", "content": "Rules."}
    assert messages[1]["content"] == [
        {"type": "text", "text": "Look:"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "auto"}},
    ]
    assert messages[2]["role"] == "assistant" and messages[2]["content"] == "Let me check."
    assert [c["id"] for c in messages[2]["tool_calls"]] == ["c1", "c2"]
    assert messages[3:] == [
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "tool", "tool_call_id": "c2", "content": "two"},
    ]


def test_sampling_limits_format_and_echo() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    request = read_request(
        {
            "model": "m",
            "input": "x",
            "temperature": 0.5,
            "top_p": 0.9,
            "max_output_tokens": 64,
            "metadata": {"run": "7"},
            "user": "u1",
            "text": {"format": {"type": "json_schema", "name": "out", "schema": schema}},
            "stream": True,
            "store": False,
            "truncation": "disabled",
            "background": False,
            "reasoning": {"effort": "low", "summary": None},
        }
    )
    chat = chat_body(request)
    assert chat.stream and chat.body["stream"] is True
    assert chat.body["temperature"] == 0.5 and chat.body["top_p"] == 0.9
    assert chat.body["max_completion_tokens"] == 64 and chat.body["user"] == "u1"
    assert chat.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": schema},
    }
    assert chat.body["reasoning_effort"] == "low"
    assert "metadata" not in chat.body  # echoed in the answer, not sent to the provider
    assert request.echo["metadata"] == {"run": "7"} and not request.store
    json_object = read_request(
        {"model": "m", "input": "x", "text": {"format": {"type": "json_object"}}}
    )
    assert json_object.chat["response_format"] == {"type": "json_object"}


def test_named_tool_choice_becomes_chats_nested_form() -> None:
    body = {**AGENT_TURN, "tool_choice": {"type": "function", "name": "get_weather"}}
    chat = chat_body(read_request(body)).body
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


@pytest.mark.parametrize(
    "tool",
    BUILT_IN_TOOLS,
)
def test_built_in_tools_are_refused_by_name(tool: dict[str, Any]) -> None:
    with pytest.raises(GatewayError) as caught:
        read_request({"model": "m", "input": "x", "tools": [tool]})
    assert caught.value.details == [
        {
            "field": "tools[0].type",
            "issue": f"{tool['type']} tools are not supported by this gateway"
            " (only function tools)",
        }
    ]
    assert tool["type"] in caught.value.message


@pytest.mark.parametrize(
    ("extra", "expected"),
    BAD_FIELDS,
)
def test_each_bad_field_is_named(extra: dict[str, Any], expected: list[str]) -> None:
    assert problems({"model": "m", "input": "x", **extra}) == expected


@pytest.mark.parametrize(
    ("input_value", "expected"),
    BAD_ITEMS,
)
def test_each_bad_item_is_named(input_value: Any, expected: list[str]) -> None:
    assert problems({"model": "m", "input": input_value}) == expected


def test_model_and_input_are_required() -> None:
    assert problems({}) == ["model", "input"]


def test_the_earlier_conversation_comes_before_the_new_items() -> None:
    request = read_request({"model": "m", "input": "And Rome?", "instructions": "Now."})
    earlier: list[dict[str, Any]] = [
        {"type": "message", "role": "user", "content": "Paris?"},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Sunny."}],
        },
    ]
    assert chat_body(request, earlier).body["messages"] == [
        {"role": "system", "content": "Now."},
        {"role": "user", "content": "Paris?"},
        {"role": "assistant", "content": "Sunny."},
        {"role": "user", "content": "And Rome?"},
    ]
