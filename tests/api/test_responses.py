"""``POST /v1/responses`` (sync) on every chat provider, by the ``openai`` SDK and raw HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.api.responses_support import (
    RESPONSES,
    WEATHER_TOOL,
    answer,
    client,
    post,
    text_of,
)
from tests.conftest import (
    OTHER_KEY,
    CapturedLogs,
    GatewayFactory,
    Upstream,
    auth,
    base_config,
    wait_until,
)
from tests.fakes import anthropic_upstream, openai_upstream
from tests.fakes.server import UvicornServer

REPLIES = {
    "gpt-test": "".join(openai_upstream.REPLY_WORDS),
    "claude-test": "".join(anthropic_upstream.REPLY_WORDS),
}


@pytest.mark.parametrize("model", ["gpt-test", "claude-test", "local-chat"])
def test_the_sdk_creates_a_response_on_every_provider(gateway: UvicornServer, model: str) -> None:
    raw = client(gateway).responses.with_raw_response.create(
        model=model, input="Say hi.", instructions="Be brief.", max_output_tokens=64
    )
    response = raw.parse()
    assert response.model == model and response.object == "response"
    assert response.id.startswith("resp_") and response.status == "completed"
    assert response.output_text == REPLIES.get(model, response.output_text)
    assert response.output_text.startswith("Offline reply to: Say hi") or model != "local-chat"
    assert response.usage is not None and response.usage.total_tokens > 0
    assert raw.headers["x-request-id"].startswith("req_")
    answer(gateway, {"model": model, "input": "Say hi."})  # the raw JSON, against the schema


def test_the_provider_receives_the_translated_chat_request(
    gateway: UvicornServer, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    body = {
        "model": "gpt-test",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]}],
        "instructions": "Be brief.",
        "temperature": 0.2,
        "max_output_tokens": 50,
        "metadata": {"run": "1"},
    }
    response = answer(gateway, body)
    assert response["temperature"] == 0.2 and response["metadata"] == {"run": "1"}
    sent = openai_fake.plan.requests[0].body
    assert sent["model"] == "upstream-gpt"
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert sent["temperature"] == 0.2 and sent["max_completion_tokens"] == 50
    assert "metadata" not in sent and "input" not in sent
    answer(gateway, {**body, "model": "claude-test"})
    sent = anthropic_fake.plan.requests[0].body
    assert sent["system"] == "Be brief." and sent["max_tokens"] == 50
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]


def test_auto_and_aliases_resolve_through_the_catalog(
    gateway_factory: GatewayFactory, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    config = base_config(openai_fake.url, anthropic_fake.url)
    config["routing"]["aliases"] = {"fast": "local-chat"}
    server = gateway_factory(config)
    assert answer(server, {"model": "auto", "input": "hi"})["model"] == "gpt-test"
    assert answer(server, {"model": "fast", "input": "hi"})["model"] == "local-chat"
    openai_fake.plan.push("status", status=503, times=2)  # the first auto model fails: fallback
    assert answer(server, {"model": "auto", "input": "hi"})["model"] == "claude-test"
    limited = post(server, {"model": "auto", "input": "hi"}, auth(OTHER_KEY))
    assert limited.status_code == 200 and limited.json()["model"] == "local-chat"


@pytest.mark.parametrize("model", ["gpt-test", "claude-test"])
def test_a_function_tool_is_called_then_its_result_answered(
    gateway: UvicornServer, model: str
) -> None:
    first = answer(gateway, {"model": model, "input": "Weather in Paris?", "tools": [WEATHER_TOOL]})
    (call,) = first["output"]
    assert call["type"] == "function_call" and call["name"] == "get_weather"
    assert call["arguments"].replace(" ", "") == '{"city":"Paris"}'
    assert first["tools"][0]["name"] == "get_weather" and first["status"] == "completed"
    turn = [
        {"role": "user", "content": "Weather in Paris?"},
        {k: call[k] for k in ("type", "call_id", "name", "arguments", "id", "status")},
        {"type": "function_call_output", "call_id": call["call_id"], "output": "Sunny"},
    ]
    second = answer(gateway, {"model": model, "input": turn, "tools": [WEATHER_TOOL]})
    assert text_of(second) == REPLIES[model]


@pytest.mark.parametrize(
    ("tool", "named"),
    [
        ({"type": "web_search"}, "web_search"),
        ({"type": "file_search", "vector_store_ids": ["vs_1"]}, "file_search"),
        ({"type": "computer_use_preview"}, "computer_use_preview"),
        ({"type": "code_interpreter", "container": {"type": "auto"}}, "code_interpreter"),
    ],
)
def test_built_in_tools_are_a_400_naming_the_tool(
    gateway: UvicornServer, openai_fake: Upstream, tool: dict[str, Any], named: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(gateway).responses.create(model="gpt-test", input="x", tools=[tool])  # type: ignore[list-item]
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "invalid_request"
    assert error["param"] == "tools[0].type" and named in error["message"]
    assert openai_fake.plan.calls == 0


def test_bad_requests_get_the_envelope(gateway: UvicornServer, openai_fake: Upstream) -> None:
    cases: list[tuple[Any, int, str, str | None]] = [
        (
            {"model": "gpt-test", "input": "x", "frobnicate": 1},
            400,
            "invalid_request",
            "frobnicate",
        ),
        ({"model": "gpt-test"}, 400, "invalid_request", "input"),
        (
            {"model": "gpt-test", "input": "x", "include": ["reasoning.encrypted_content"]},
            400,
            "invalid_request",
            "include",
        ),
        ({"model": "nope", "input": "x"}, 404, "model_not_found", None),
        ({"model": "local-music", "input": "x"}, 400, "invalid_request", "model"),
    ]
    for body, status, code, param in cases:
        response = post(gateway, body)
        assert response.status_code == status, (body, response.text)
        error = response.json()["error"]
        assert error["code"] == code and error["request_id"] == response.headers["x-request-id"]
        if param is not None:
            assert error["param"] == param
    unauthenticated = httpx.post(gateway.url + RESPONSES, json={"model": "auto", "input": "x"})
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"]["code"] == "missing_api_key"
    assert openai_fake.plan.calls == 0


def test_a_provider_failure_is_the_chat_envelope(
    gateway: UvicornServer, openai_fake: Upstream
) -> None:
    openai_fake.plan.push("status", status=500, times=2)
    response = post(gateway, {"model": "gpt-test", "input": "x"})
    assert response.status_code == 502 and response.json()["error"]["code"] == "upstream_error"
    openai_fake.plan.push("status", status=400, message="bad tool schema", param="tools")
    response = post(gateway, {"model": "gpt-test", "input": "x"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request"


def test_idempotency_key_replays_the_answer_byte_for_byte(
    gateway: UvicornServer, openai_fake: Upstream
) -> None:
    body = {"model": "gpt-test", "input": "once"}
    first = post(gateway, body, {"idempotency-key": "resp-1"})
    again = post(gateway, body, {"idempotency-key": "resp-1"})
    assert first.status_code == again.status_code == 200
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    assert openai_fake.plan.calls == 1
    other = post(gateway, {**body, "input": "twice"}, {"idempotency-key": "resp-1"})
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_conflict"


def test_rate_limits_apply_as_on_chat(
    gateway_factory: GatewayFactory, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    config = base_config(openai_fake.url, anthropic_fake.url)
    config["keys"]["dev"]["rpm"] = 2
    server = gateway_factory(config)
    first = post(server, {"model": "gpt-test", "input": "x"})
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    chat = httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]},
        headers=auth(),
    )
    assert chat.status_code == 200  # one budget for the key, whichever API spends it
    refused = post(server, {"model": "gpt-test", "input": "x"})
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1


def test_the_access_log_and_metrics_say_what_happened(
    gateway: UvicornServer, logs: CapturedLogs
) -> None:
    answer(gateway, {"model": "auto", "input": "my private prompt"})
    wait_until(lambda: any(line.get("route") == RESPONSES for line in logs.lines()))
    line = next(line for line in logs.lines() if line.get("route") == RESPONSES)
    assert line["status"] == 200 and line["method"] == "POST" and line["key"] == "dev"
    assert line["model"] == "auto" and line["model_served"] == "gpt-test"
    assert line["provider"] == "openai" and line["attempts"] == 1 and line["stream"] is False
    assert line["prompt_tokens"] > 0 and line["completion_tokens"] == 6
    assert "my private prompt" not in logs.text()
    metrics = httpx.get(gateway.url + "/metrics").text
    assert 'beatra_http_requests_total{method="POST",route="/v1/responses",status="200"}' in metrics
    spec = httpx.get(gateway.url + "/openapi.json").json()
    assert "post" in spec["paths"][RESPONSES]
