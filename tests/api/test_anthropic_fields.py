"""Every OpenAI chat field on the Anthropic path is translated, a no-op, or a 400 naming it.

Through a real gateway and the official ``openai`` SDK; the fake Anthropic server records the
exact Messages body it received (and, like the real API, refuses fields it does not have).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import openai
import pydantic
import pytest

from tests.conftest import DEV_KEY, Upstream, auth
from tests.fakes.server import UvicornServer

MESSAGES: Any = [
    {"role": "system", "content": "You are concise."},
    {"role": "user", "content": "Tell me about Paris."},
]
# What the fake receives for MESSAGES when no other field is given.
MINIMAL = {
    "model": "claude-upstream",
    "max_tokens": 4096,
    "system": "You are concise.",
    "messages": [{"role": "user", "content": [{"type": "text", "text": "Tell me about Paris."}]}],
}


def client(server: UvicornServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=DEV_KEY, max_retries=0, timeout=10)


class City(pydantic.BaseModel):
    name: str
    population: int
    coastal: bool
    districts: list[str]


def test_mapped_fields_reach_anthropic_exactly(
    gateway: UvicornServer, anthropic_fake: Upstream
) -> None:
    tool: Any = {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {"type": "object", "properties": {}},
            "strict": True,
        },
    }
    client(gateway).chat.completions.create(
        model="claude-test",
        messages=MESSAGES,
        max_completion_tokens=300,
        temperature=0.4,
        top_p=1,  # the OpenAI default many clients always send: accepted, and not sent on
        stop=["END"],
        user="user-7",
        tools=[tool],
        tool_choice="auto",
        parallel_tool_calls=False,
        reasoning_effort="high",
        service_tier="default",
        n=1,
        presence_penalty=0,
        frequency_penalty=0.0,
        logprobs=False,
        extra_body={"top_k": 40, "thinking": {"type": "enabled", "budget_tokens": 1024}},
    )
    assert anthropic_fake.plan.requests[0].body == {
        **MINIMAL,
        "max_tokens": 300,
        "temperature": 0.4,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "user-7"},
        "output_config": {"effort": "high"},
        "service_tier": "standard_only",
        "top_k": 40,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "tools": [
            {"name": "lookup", "input_schema": {"type": "object", "properties": {}}, "strict": True}
        ],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
    }


def test_parse_with_a_pydantic_model_uses_structured_outputs(
    gateway: UvicornServer, anthropic_fake: Upstream
) -> None:
    completion = client(gateway).chat.completions.parse(
        model="claude-test", messages=MESSAGES, response_format=City
    )
    city = completion.choices[0].message.parsed
    assert city == City(name="fake", population=1, coastal=True, districts=["fake"])
    sent = anthropic_fake.plan.requests[0].body
    schema = sent["output_config"]["format"]["schema"]
    assert sent == {
        **MINIMAL,
        "output_config": {"format": {"type": "json_schema", "schema": schema}},
    }
    assert schema["properties"].keys() == City.model_fields.keys()
    assert schema["additionalProperties"] is False


def test_structured_output_streams_as_content(
    gateway: UvicornServer, anthropic_fake: Upstream
) -> None:
    with client(gateway).chat.completions.stream(
        model="claude-test", messages=MESSAGES, response_format=City
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.parsed == City(
        name="fake", population=1, coastal=True, districts=["fake"]
    )
    assert "output_config" in anthropic_fake.plan.requests[0].body


@pytest.mark.parametrize("stream", [False, True])
def test_json_object_is_a_forced_tool_whose_input_is_the_content(
    gateway: UvicornServer, anthropic_fake: Upstream, stream: bool
) -> None:
    body: dict[str, Any] = {
        "model": "claude-test",
        "messages": MESSAGES,
        "response_format": {"type": "json_object"},
    }
    sdk = client(gateway)
    if stream:
        chunks = list(sdk.chat.completions.create(**body, stream=True))
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
        assert not any(c.choices[0].delta.tool_calls for c in chunks if c.choices)
    else:
        answer = sdk.chat.completions.create(**body)
        content, finish = answer.choices[0].message.content or "", answer.choices[0].finish_reason
        assert answer.choices[0].message.tool_calls is None
    assert json.loads(content) == {"city": "Paris"}  # the fake's tool input
    assert finish == "stop"
    sent = anthropic_fake.plan.requests[0].body
    assert sent["tool_choice"] == {"type": "tool", "name": "json_object"}
    assert sent["tools"] == [
        {
            "name": "json_object",
            "description": "Give your whole answer as this tool's input: one JSON object.",
            "input_schema": {"type": "object"},
        }
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("logprobs", True),
        ("top_logprobs", 3),
        ("seed", 7),
        ("frequency_penalty", 0.5),
        ("presence_penalty", -1),
        ("n", 2),
        ("logit_bias", {"50256": -100}),
        ("store", True),
        ("metadata", {"team": "search"}),
        ("reasoning_effort", "minimal"),
        ("service_tier", "flex"),
        ("modalities", ["text", "audio"]),
        ("no_such_field", 1),
    ],
)
def test_fields_without_an_equivalent_are_400_before_any_upstream_call(
    gateway: UvicornServer, anthropic_fake: Upstream, field: str, value: Any
) -> None:
    body = {"model": "claude-test", "messages": MESSAGES, field: value}
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=auth())
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["details"][0]["field"] == error["param"] == field
    assert field in error["message"]
    assert anthropic_fake.plan.calls == 0


@pytest.mark.parametrize(
    ("response_format", "field"),
    [
        (
            {"type": "json_schema", "json_schema": {"name": "x"}},
            "response_format.json_schema.schema",
        ),
        (
            {
                "type": "json_schema",
                "json_schema": {"name": "x", "description": "A city", "schema": {}},
            },
            "response_format.json_schema.description",
        ),
        ({"type": "yaml"}, "response_format.type"),
    ],
)
def test_response_formats_that_cannot_map_are_400(
    gateway: UvicornServer, anthropic_fake: Upstream, response_format: Any, field: str
) -> None:
    body = {"model": "claude-test", "messages": MESSAGES, "response_format": response_format}
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=auth())
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == field
    assert anthropic_fake.plan.calls == 0


def test_forcing_a_tool_without_tools_is_400(
    gateway: UvicornServer, anthropic_fake: Upstream
) -> None:
    body = {"model": "claude-test", "messages": MESSAGES, "tool_choice": "required"}
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=auth())
    assert response.json()["error"]["param"] == "tool_choice"
    assert anthropic_fake.plan.calls == 0


def test_no_op_values_are_accepted_and_send_nothing(
    gateway: UvicornServer, anthropic_fake: Upstream
) -> None:
    body = {
        "model": "claude-test",
        "messages": MESSAGES,
        "n": 1,
        "presence_penalty": 0,
        "frequency_penalty": 0,
        "logprobs": False,
        "top_logprobs": 0,
        "logit_bias": {},
        "store": False,
        "metadata": {},
        "seed": None,
        "response_format": {"type": "text"},
        "tool_choice": "none",
    }
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=auth())
    assert response.status_code == 200, response.text
    assert anthropic_fake.plan.requests[0].body == MINIMAL


@pytest.mark.parametrize("stream", [False, True])
def test_cache_reads_are_cached_prompt_tokens(
    gateway: UvicornServer, anthropic_fake: Upstream, stream: bool
) -> None:
    messages: Any = [{"role": "user", "content": f"A long shared prefix {uuid.uuid4()}"}]
    sdk = client(gateway)

    def usage() -> Any:
        extra: Any = {"cache_control": {"type": "ephemeral"}}
        if not stream:
            return sdk.chat.completions.create(
                model="claude-test", messages=messages, extra_body=extra
            ).usage
        chunks = sdk.chat.completions.create(
            model="claude-test",
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
            extra_body=extra,
        )
        return list(chunks)[-1].usage

    written, read = usage(), usage()
    assert written.prompt_tokens == read.prompt_tokens > 0  # the whole prompt, both times
    assert written.prompt_tokens_details.cached_tokens == 0  # a cache write is not a read
    assert read.prompt_tokens_details.cached_tokens == read.prompt_tokens
    assert anthropic_fake.plan.requests[0].body["cache_control"] == {"type": "ephemeral"}


def test_temperature_with_top_p_one_is_accepted_and_both_set_is_400(
    gateway: UvicornServer, anthropic_fake: Upstream
) -> None:
    url = f"{gateway.url}/v1/chat/completions"
    body = {"model": "claude-test", "messages": MESSAGES, "temperature": 1, "top_p": 0.5}
    assert httpx.post(url, json=body, headers=auth()).status_code == 200
    assert anthropic_fake.plan.requests[0].body == {**MINIMAL, "top_p": 0.5}
    body = {**body, "temperature": 0.5}
    response = httpx.post(url, json=body, headers=auth())
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "top_p"
    assert anthropic_fake.plan.calls == 1


def test_a_participant_name_is_400_naming_the_message(
    gateway: UvicornServer, anthropic_fake: Upstream
) -> None:
    messages = [*MESSAGES[:1], {**MESSAGES[1], "name": "alice"}]
    body = {"model": "claude-test", "messages": messages}
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=auth())
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages[1].name"
    assert anthropic_fake.plan.calls == 0
