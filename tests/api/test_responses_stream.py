"""``POST /v1/responses`` with ``stream: true``: OpenAI's event sequence on every provider."""

from __future__ import annotations

import httpx
import pytest

from tests.api.responses_support import (
    WEATHER_TOOL,
    client,
    events_of,
    post,
    stream,
)
from tests.conftest import CapturedLogs, Upstream, wait_until
from tests.fakes import anthropic_upstream, openai_upstream
from tests.fakes.server import UvicornServer

TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    *["response.output_text.delta"] * 5,
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]
REPLIES = {
    "gpt-test": "".join(openai_upstream.REPLY_WORDS[:5]),
    "claude-test": "".join(anthropic_upstream.REPLY_WORDS[:5]),
}


@pytest.mark.parametrize("model", ["gpt-test", "claude-test"])
def test_a_text_stream_is_the_documented_sequence(gateway: UvicornServer, model: str) -> None:
    events = stream(gateway, {"model": model, "input": "Say hi."})
    assert [event["type"] for event in events] == TEXT_EVENTS
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == REPLIES[model]
    final = events[-1]["response"]
    assert final["model"] == model and final["status"] == "completed"
    assert final["output"][0]["content"][0]["text"] == deltas
    assert final["usage"]["output_tokens"] == 5
    assert events[0]["response"]["id"] == final["id"]


def test_the_local_model_streams_token_by_token(gateway: UvicornServer) -> None:
    events = stream(gateway, {"model": "local-chat", "input": "Say hi."})
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert len(deltas) > 5 and "".join(deltas).startswith("Offline reply to: Say hi")
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["usage"]["output_tokens"] == len(deltas)


@pytest.mark.parametrize("model", ["gpt-test", "claude-test"])
def test_a_streamed_tool_call(gateway: UvicornServer, model: str) -> None:
    events = stream(gateway, {"model": model, "input": "Weather?", "tools": [WEATHER_TOOL]})
    kinds = [event["type"] for event in events]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert kinds[-3:] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert set(kinds[3:-3]) == {"response.function_call_arguments.delta"}
    added, done = events[2]["item"], events[-2]["item"]
    assert added["type"] == "function_call" and added["status"] == "in_progress"
    assert done["status"] == "completed" and done["name"] == "get_weather"
    assert done["arguments"].replace(" ", "") == '{"city":"Paris"}'
    assert events[-3]["arguments"] == done["arguments"]
    assert events[-1]["response"]["output"] == [done]


def test_max_output_tokens_ends_incomplete(gateway: UvicornServer) -> None:
    events = stream(gateway, {"model": "local-chat", "input": "hi", "max_output_tokens": 16})
    assert events[-1]["type"] == "response.incomplete"
    response = events[-1]["response"]
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["output"][0]["status"] == "incomplete"


def test_the_sdk_streams_and_assembles_the_final_response(gateway: UvicornServer) -> None:
    sdk = client(gateway)
    with sdk.responses.stream(model="gpt-test", input="Say hi.") as events:
        deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
        final = events.get_final_response()
    assert "".join(deltas) == final.output_text == REPLIES["gpt-test"]
    assert final.model == "gpt-test"
    created = sdk.responses.create(model="claude-test", input="Say hi.", stream=True)
    kinds = [event.type for event in created]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"


def test_a_failure_before_the_first_event_is_a_json_envelope(
    gateway: UvicornServer, openai_fake: Upstream
) -> None:
    openai_fake.plan.push("status", status=500, times=2)
    response = post(gateway, {"model": "gpt-test", "input": "x", "stream": True})
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == "upstream_error"


def test_a_failure_after_the_first_event_is_an_error_event_and_the_end(
    gateway: UvicornServer, openai_fake: Upstream, logs: CapturedLogs
) -> None:
    openai_fake.plan.push("cut", after=3)
    response = post(gateway, {"model": "gpt-test", "input": "x", "stream": True})
    assert response.status_code == 200
    events = events_of(response.content)
    assert events[0]["type"] == "response.created"
    assert events[-1] == {
        "type": "error",
        "code": "upstream_error",
        "message": "The upstream provider failed.",
        "param": None,
        "sequence_number": len(events) - 1,
    }
    assert not any(e["type"] == "response.completed" for e in events)
    metrics = httpx.get(gateway.url + "/metrics").text
    assert 'beatra_stream_errors_total{code="upstream_error",model="gpt-test"} 1.0' in metrics
    wait_until(lambda: any(line.get("route") == "/v1/responses" for line in logs.lines()))
    line = next(line for line in logs.lines() if line.get("route") == "/v1/responses")
    assert line["error_code"] == "upstream_error" and line["stream"] is True
    assert line["ttft_ms"] is not None


def test_a_completed_stream_is_replayed_under_its_idempotency_key(
    gateway: UvicornServer, openai_fake: Upstream
) -> None:
    body = {"model": "gpt-test", "input": "x", "stream": True}
    first = post(gateway, body, {"idempotency-key": "stream-1"})
    again = post(gateway, body, {"idempotency-key": "stream-1"})
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    assert again.headers["content-type"].startswith("text/event-stream")
    assert openai_fake.plan.calls == 1
    events_of(again.content)
