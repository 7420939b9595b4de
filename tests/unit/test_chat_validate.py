"""Chat request validation, field by field."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.contract.chat_validate import validate_chat
from gateway.contract.errors import GatewayError

USER = [{"role": "user", "content": "hi"}]


def fields(body: dict[str, Any]) -> list[str]:
    with pytest.raises(GatewayError) as caught:
        validate_chat(body)
    assert caught.value.code == "invalid_request"
    return [d["field"] for d in caught.value.details or []]


def test_minimal_and_rich_requests_pass_untouched() -> None:
    body: dict[str, Any] = {
        "model": "auto",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": "really"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]},
            {"role": "tool", "content": "42", "tool_call_id": "c1"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0,
        "max_tokens": 16,
        "stop": ["\n"],
        "n": 2,
        "seed": 3,
        "tools": [],
        "tool_choice": "auto",
        "response_format": {"type": "json_object"},
        "some_future_field": {"kept": True},
    }
    request = validate_chat(body)
    assert request.stream and request.include_usage and request.model == "auto"
    assert request.body is body and body["some_future_field"] == {"kept": True}


@pytest.mark.parametrize(
    ("temperature", "top_p"), [(0.2, 1), (0.2, 1.0), (1, 0.5), (1.0, 1), (None, 0.5), (0.7, None)]
)
def test_temperature_with_a_default_top_p_or_the_reverse_is_accepted(
    temperature: float | None, top_p: float | None
) -> None:
    body = {"model": "m", "messages": USER, "temperature": temperature, "top_p": top_p}
    assert validate_chat(body).body is body


def test_nulls_mean_not_given() -> None:
    request = validate_chat({"model": "m", "messages": USER, "temperature": None, "top_p": 0.3})
    assert not request.stream


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"temperature": -0.1}, ["temperature"]),
        ({"temperature": 2.0001}, ["temperature"]),
        ({"top_p": 1.5}, ["top_p"]),
        ({"temperature": 0.5, "top_p": 0.9}, ["top_p"]),
        ({"temperature": 0, "top_p": 0.99}, ["top_p"]),
        ({"max_tokens": 1.5}, ["max_tokens"]),
        ({"max_completion_tokens": -1}, ["max_completion_tokens"]),
        ({"n": 129}, ["n"]),
        ({"stop": ["a", "b", "c", "d", "e"]}, ["stop"]),
        ({"stop": [1]}, ["stop"]),
        ({"presence_penalty": 3}, ["presence_penalty"]),
        ({"frequency_penalty": "x"}, ["frequency_penalty"]),
        ({"seed": 1.5}, ["seed"]),
        ({"user": 5}, ["user"]),
        ({"logprobs": 1}, ["logprobs"]),
        ({"top_logprobs": 21}, ["top_logprobs"]),
        ({"tools": {}}, ["tools"]),
        ({"tool_choice": 1}, ["tool_choice"]),
        (
            {"stream": True, "stream_options": {"include_usage": "yes"}},
            ["stream_options.include_usage"],
        ),
        ({"stream": 1}, ["stream"]),
    ],
)
def test_bad_optional_fields(extra: dict[str, Any], expected: list[str]) -> None:
    assert fields({"model": "m", "messages": USER, **extra}) == expected


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        (["hi"], ["messages[0]"]),
        ([{"content": "x"}], ["messages[0].role"]),
        ([{"role": "user"}], ["messages[0].content"]),
        ([{"role": "assistant", "content": None}], ["messages[0].content"]),
        ([{"role": "user", "content": []}], ["messages[0].content"]),
        ([{"role": "user", "content": [{"type": "video"}]}], ["messages[0].content[0].type"]),
        ([{"role": "user", "content": [{"type": "text"}]}], ["messages[0].content[0].text"]),
        ([{"role": "tool", "content": "x"}], ["messages[0].tool_call_id"]),
        ([{"role": "user", "content": "x", "name": 3}], ["messages[0].name"]),
        (
            [{"role": "user", "content": "ok"}, {"role": "bot", "content": "x"}, {"role": "user"}],
            ["messages[1].role", "messages[2].content"],
        ),
    ],
)
def test_bad_messages(messages: Any, expected: list[str]) -> None:
    assert fields({"model": "m", "messages": messages}) == expected


def test_message_summary_names_the_first_problem_and_counts_the_rest() -> None:
    with pytest.raises(GatewayError) as caught:
        validate_chat({"model": "", "messages": [], "n": 0})
    assert caught.value.message.startswith("model: ")
    assert caught.value.message.endswith("(and 2 more)")
