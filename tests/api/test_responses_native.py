"""A provider that speaks the Responses API natively (``responses_api = true``) gets the body
as the client wrote it, but for the model; its answers and events are relayed as they came."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import openai
from agents import Agent, OpenAIResponsesModel, Runner, set_tracing_disabled

from tests.api.responses_support import RESPONSES, answer, client, events_of, post, stream, text_of
from tests.conftest import (
    DEV_KEY,
    CapturedLogs,
    GatewayFactory,
    Upstream,
    auth,
    base_config,
    wait_until,
)
from tests.fakes import anthropic_upstream, openai_upstream
from tests.fakes.openai_responses_upstream import NATIVE_WORDS, RESPONSE_ID
from tests.fakes.server import UvicornServer

NATIVE = "".join(NATIVE_WORDS)
set_tracing_disabled(True)  # the Agents SDK would otherwise send traces to OpenAI


def native_gateway(
    factory: GatewayFactory, openai_fake: Upstream, anthropic_fake: Upstream
) -> UvicornServer:
    config = base_config(openai_fake.url, anthropic_fake.url)
    config["providers"]["native"] = {
        **config["providers"]["openai"],
        "options": {"responses_api": True},
    }
    config["models"]["gpt-native"] = {"provider": "native", "model": "upstream-native"}
    config["routing"]["auto"] = ["gpt-native", "claude-test"]
    return factory(config)


def test_the_body_goes_through_unchanged_but_for_the_model(
    gateway_factory: GatewayFactory,
    openai_fake: Upstream,
    anthropic_fake: Upstream,
    logs: CapturedLogs,
) -> None:
    server = native_gateway(gateway_factory, openai_fake, anthropic_fake)
    body: dict[str, Any] = {
        "model": "gpt-native",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]}],
        "instructions": "Be brief.",
        "temperature": 0.3,
        "metadata": {"run": "n"},
        "text": {"format": {"type": "text"}},
    }
    response = answer(server, body)
    (sent,) = openai_fake.plan.requests
    assert sent.path == "/v1/responses"
    assert sent.body == {**body, "model": "upstream-native"}
    assert response["id"] == RESPONSE_ID and response["model"] == "gpt-native"
    assert text_of(response) == NATIVE
    assert httpx.get(f"{server.url}{RESPONSES}/{RESPONSE_ID}", headers=auth()).json() == response
    assert client(server).responses.create(model="gpt-native", input="Hi").output_text == NATIVE
    wait_until(lambda: any(line.get("route") == RESPONSES for line in logs.lines()))
    line = next(line for line in logs.lines() if line.get("route") == RESPONSES)
    assert line["model_served"] == "gpt-native" and line["provider"] == "native"
    assert (line["prompt_tokens"], line["completion_tokens"]) == (11, len(NATIVE_WORDS))


def test_a_native_stream_is_relayed_with_the_catalog_id(
    gateway_factory: GatewayFactory, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    server = native_gateway(gateway_factory, openai_fake, anthropic_fake)
    events = stream(server, {"model": "gpt-native", "input": "Hi"})
    assert openai_fake.plan.requests[0].body["stream"] is True
    assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"
    assert {e["response"]["model"] for e in events if "response" in e} == {"gpt-native"}
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == NATIVE
    final = httpx.get(f"{server.url}{RESPONSES}/{RESPONSE_ID}", headers=auth()).json()
    assert final == events[-1]["response"]


def test_a_native_stream_cut_short_ends_with_an_error_event(
    gateway_factory: GatewayFactory, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    server = native_gateway(gateway_factory, openai_fake, anthropic_fake)
    openai_fake.plan.push("cut", after=4)
    response = post(server, {"model": "gpt-native", "input": "Hi", "stream": True})
    events = events_of(response.content)  # the sequence numbers still count on
    assert [e["type"] for e in events][-1] == "error" and len(events) == 5
    assert events[-1]["code"] == "upstream_error"
    openai_fake.plan.push("no_done")  # a clean end without response.completed is no end
    events = events_of(post(server, {"model": "gpt-native", "input": "Hi", "stream": True}).content)
    assert events[-2]["type"] == "response.output_item.done" and events[-1]["type"] == "error"
    openai_fake.plan.push("malformed", after=3)
    events = events_of(post(server, {"model": "gpt-native", "input": "Hi", "stream": True}).content)
    assert len(events) == 4 and events[-1]["code"] == "upstream_error"


def test_conversations_move_between_native_and_translated_deployments(
    gateway_factory: GatewayFactory, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    server = native_gateway(gateway_factory, openai_fake, anthropic_fake)
    first = answer(server, {"model": "gpt-test", "input": "My name is Ana."})
    second = answer(
        server, {"model": "gpt-native", "input": "Name?", "previous_response_id": first["id"]}
    )
    sent = openai_fake.plan.requests[1].body
    assert "previous_response_id" not in sent
    assert sent["input"] == [
        {"role": "user", "content": "My name is Ana."},
        {"role": "assistant", "content": "".join(openai_upstream.REPLY_WORDS)},
        {"role": "user", "content": "Name?"},
    ]
    answer(server, {"model": "claude-test", "input": "And?", "previous_response_id": second["id"]})
    turns = anthropic_fake.plan.requests[0].body["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user", "assistant", "user"]
    assert turns[3]["content"] == [{"type": "text", "text": NATIVE}]  # the native answer


def test_a_failing_native_deployment_falls_back_to_a_translated_one(
    gateway_factory: GatewayFactory, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    server = native_gateway(gateway_factory, openai_fake, anthropic_fake)
    openai_fake.plan.push("status", status=503, times=2)
    response = answer(server, {"model": "auto", "input": "Hi"})
    assert response["model"] == "claude-test" and response["id"] != RESPONSE_ID
    assert text_of(response) == "".join(anthropic_upstream.REPLY_WORDS)
    assert openai_fake.plan.calls == 2 and anthropic_fake.plan.calls == 1


def test_the_sdks_run_on_a_native_deployment(
    gateway_factory: GatewayFactory, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    server = native_gateway(gateway_factory, openai_fake, anthropic_fake)
    with client(server).responses.stream(model="gpt-native", input="Hi") as events:
        assert events.get_final_response().output_text == NATIVE

    async def run() -> tuple[object, object]:
        sdk = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=DEV_KEY, max_retries=0)
        model = OpenAIResponsesModel(model="gpt-native", openai_client=sdk)
        agent = Agent(name="plain", instructions="Be brief.", model=model)
        whole = await Runner.run(agent, "Hi")
        streamed = Runner.run_streamed(agent, "Hi")
        async for _ in streamed.stream_events():
            pass
        return whole.final_output, streamed.final_output

    assert asyncio.run(run()) == (NATIVE, NATIVE)
    assert all(r.path == "/v1/responses" for r in openai_fake.plan.requests)
