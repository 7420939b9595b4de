"""Streaming, disconnects and fallback against a real uvicorn server and real fake upstreams."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from gateway.app import create_app
from gateway.config.settings import settings_from_dict
from tests.conftest import (
    TEST_ENV,
    CapturedLogs,
    GatewayFactory,
    Upstream,
    auth,
    base_config,
    wait_until,
)
from tests.fakes.server import UvicornServer

CHAT = "/v1/chat/completions"


def stream_body(model: str = "gpt-test", **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "stream": True,
        "messages": [{"role": "user", "content": "stream please"}],
        **extra,
    }


def read_events(response: httpx.Response) -> list[bytes]:
    """The ``data:`` payloads of an SSE response, checking the framing on the way."""
    events = []
    for block in response.read().split(b"\n\n"):
        if block:
            assert block.startswith(b"data: "), block
            events.append(block[6:])
    return events


def test_stream_is_sse_ending_with_done(gateway: UvicornServer, openai_fake: Upstream) -> None:
    with httpx.stream("POST", gateway.url + CHAT, json=stream_body(), headers=auth()) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-request-id"].startswith("req_")
        events = read_events(response)
    assert events[-1] == b"[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "gpt-test" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    wait_until(lambda: openai_fake.plan.completed_streams == 1)  # noted just after the last write


def test_failure_before_first_byte_is_a_json_envelope(
    gateway: UvicornServer, openai_fake: Upstream
) -> None:
    openai_fake.plan.push("status", times=2, status=503)
    response = httpx.post(gateway.url + CHAT, json=stream_body(), headers=auth())
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == "upstream_error"
    assert b"data:" not in response.content


def test_failure_mid_stream_is_an_error_event_without_done(
    gateway: UvicornServer, openai_fake: Upstream
) -> None:
    openai_fake.plan.push("cut", after=3)
    with httpx.stream("POST", gateway.url + CHAT, json=stream_body(), headers=auth()) as response:
        assert response.status_code == 200
        events = read_events(response)
    assert b"[DONE]" not in events
    error = orjson.loads(events[-1])["error"]
    assert error["code"] == "upstream_error" and error["retryable"] is True
    assert error["request_id"] == response.headers["x-request-id"]
    assert len(events) == 4  # three chunks went out before the cut, then the error event
    assert openai_fake.plan.calls == 1  # no retry after the first byte
    metrics = httpx.get(gateway.url + "/metrics").text
    assert 'beatra_stream_errors_total{code="upstream_error",model="gpt-test"} 1.0' in metrics


def test_stream_without_end_marker_or_with_bad_event_is_an_error(
    gateway: UvicornServer, openai_fake: Upstream
) -> None:
    for fault in ("no_done", "malformed"):
        openai_fake.plan.push(fault, after=2)
        with httpx.stream(
            "POST", gateway.url + CHAT, json=stream_body(), headers=auth()
        ) as response:
            events = read_events(response)
        assert b"[DONE]" not in events
        assert orjson.loads(events[-1])["error"]["code"] == "upstream_error"


def test_stalled_stream_times_out_with_an_error_event(
    gateway_factory: Any, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    config = base_config(openai_fake.url, anthropic_fake.url)
    config["providers"]["openai"]["read_timeout_s"] = 0.3
    server = gateway_factory(config)
    openai_fake.plan.push("stall", after=2)
    with httpx.stream("POST", server.url + CHAT, json=stream_body(), headers=auth()) as response:
        events = read_events(response)
    assert orjson.loads(events[-1])["error"]["code"] == "upstream_timeout"


def test_fallback_before_first_byte_to_the_next_auto_model(
    gateway: UvicornServer, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    openai_fake.plan.push("status", times=2, status=500)
    with httpx.stream(
        "POST", gateway.url + CHAT, json=stream_body("auto"), headers=auth()
    ) as response:
        events = read_events(response)
    assert events[-1] == b"[DONE]"
    assert {orjson.loads(e)["model"] for e in events[:-1]} == {"claude-test"}
    assert openai_fake.plan.calls == 2 and anthropic_fake.plan.calls == 1


def test_fallback_between_deployments_of_one_model(
    gateway_factory: Any, openai_fake: Upstream, openai_backup: Upstream, anthropic_fake: Upstream
) -> None:
    config = base_config(openai_fake.url, anthropic_fake.url)
    config["providers"]["backup"] = {
        **config["providers"]["openai"],
        "base_url": f"{openai_backup.url}/v1",
    }
    config["models"]["gpt-test"] = {
        "deployments": [
            {"provider": "openai", "model": "primary", "weight": 1000},
            {"provider": "backup", "model": "secondary", "weight": 0.001},
        ]
    }
    server = gateway_factory(config, seed=1)
    openai_fake.plan.push("reset", times=2)
    response = httpx.post(
        server.url + CHAT, json={**stream_body(), "stream": False}, headers=auth()
    )
    assert response.status_code == 200
    assert response.json()["model"] == "gpt-test"
    assert openai_backup.plan.requests[0].body["model"] == "secondary"
    metrics = httpx.get(server.url + "/metrics").text
    assert 'beatra_fallbacks_total{model="gpt-test"} 1.0' in metrics


@pytest.fixture(params=["own-protocol", "plain-httptools"])
def any_server(
    request: pytest.FixtureRequest, gateway_factory: GatewayFactory, openai_fake: Upstream
) -> Iterator[UvicornServer]:
    """The gateway under its own server protocol (told of a lost client directly) and under
    uvicorn's plain one (where a watcher task listens for http.disconnect instead)."""
    config = base_config(openai_fake.url)
    if request.param == "own-protocol":
        yield gateway_factory(config)
        return
    settings = settings_from_dict(config, TEST_ENV)
    with UvicornServer(create_app(settings), http="httptools") as server:
        yield server


def test_client_disconnect_cancels_the_upstream_stream(
    any_server: UvicornServer, openai_fake: Upstream
) -> None:
    gateway = any_server
    openai_fake.plan.chunk_gap = 0.02
    openai_fake.plan.chunk_count = 500
    with httpx.stream("POST", gateway.url + CHAT, json=stream_body(), headers=auth()) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
    # Leaving the block closed the connection mid-stream; the upstream must see it go.
    wait_until(lambda: openai_fake.plan.cancelled_streams == 1)
    assert openai_fake.plan.completed_streams == 0
    wait_until(lambda: "beatra_client_disconnects_total" in _disconnects(gateway))
    assert "beatra_open_streams 0.0" in httpx.get(gateway.url + "/metrics").text


def test_client_disconnect_cancels_a_sync_upstream_call(
    any_server: UvicornServer, openai_fake: Upstream, logs: CapturedLogs
) -> None:
    gateway = any_server
    openai_fake.plan.push("slow", delay=5.0)
    try:
        httpx.post(
            gateway.url + CHAT,
            json={**stream_body(), "stream": False},
            headers=auth(),
            timeout=0.3,
        )
    except httpx.ReadTimeout:
        pass
    else:
        raise AssertionError("the slow upstream answered too early")
    wait_until(lambda: openai_fake.plan.abandoned_requests == 1)
    wait_until(lambda: 'route="/v1/chat/completions"' in _disconnects(gateway))
    # The canceled relay still reports what it took: one call, waited on until the client left.
    (line,) = [entry for entry in logs.lines() if entry.get("route") == CHAT]
    assert (line["status"], line["attempts"], line["model_served"]) == (499, 1, None)
    # The wait on the provider is not the gateway's overhead (the request took >= 0.3 s).
    overhead = [
        float(text.rsplit(" ", 1)[1])
        for text in httpx.get(gateway.url + "/metrics").text.splitlines()
        if text.startswith('beatra_gateway_overhead_seconds_sum{route="/v1/chat/completions"}')
    ]
    assert overhead and overhead[0] < 0.2


def _disconnects(server: UvicornServer) -> str:
    text = httpx.get(server.url + "/metrics").text
    return "\n".join(
        line for line in text.splitlines() if line.startswith("beatra_client_disconnects_total")
    )
