"""Retries, Retry-After, fallback and the per-deployment circuit breaker, on a fake clock."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson

from tests.conftest import FakeClock, GatewayFactory, Upstream, auth, base_config
from tests.fakes.raw_http import Request, reset, serve_in_thread
from tests.fakes.server import UvicornServer

CHAT = "/v1/chat/completions"


def ask(server: UvicornServer, model: str = "gpt-test") -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(server.url + CHAT, json=body, headers=auth(), timeout=10)


def metric(server: UvicornServer, prefix: str) -> list[str]:
    text = httpx.get(server.url + "/metrics").text
    return [line for line in text.splitlines() if line.startswith(prefix)]


def start(
    factory: GatewayFactory, openai: Upstream, anthropic: Upstream, **relay: Any
) -> tuple[UvicornServer, FakeClock]:
    config = base_config(openai.url, anthropic.url)
    config["relay"].update(relay)
    clock = FakeClock()
    return factory(config, clock=clock), clock


def test_retry_after_a_server_error_succeeds(
    gateway_factory: GatewayFactory, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    server, _ = start(gateway_factory, openai_fake, anthropic_fake)
    openai_fake.plan.push("status", status=502)
    response = ask(server)
    assert response.status_code == 200 and response.json()["model"] == "gpt-test"
    assert openai_fake.plan.calls == 2
    assert metric(server, "beatra_retries_total") == ['beatra_retries_total{model="gpt-test"} 1.0']
    outcomes = metric(server, "beatra_upstream_requests_total")
    assert any('outcome="server_error"' in line and line.endswith(" 1.0") for line in outcomes)
    assert any('outcome="ok"' in line and line.endswith(" 1.0") for line in outcomes)


def test_short_retry_after_is_waited_out_on_the_same_deployment(
    gateway_factory: GatewayFactory, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    server, _ = start(gateway_factory, openai_fake, anthropic_fake)
    openai_fake.plan.push("status", status=429, headers={"retry-after-ms": "50"})
    response = ask(server, "auto")
    assert response.status_code == 200 and response.json()["model"] == "gpt-test"
    assert openai_fake.plan.calls == 2 and anthropic_fake.plan.calls == 0


def test_long_retry_after_falls_back_and_rests_the_deployment_until_then(
    gateway_factory: GatewayFactory, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    server, clock = start(gateway_factory, openai_fake, anthropic_fake)
    openai_fake.plan.push("status", status=429, headers={"retry-after": "30"})
    first = ask(server, "auto")
    assert first.status_code == 200 and first.json()["model"] == "claude-test"
    assert openai_fake.plan.calls == 1  # no waiting 30 s inside a request
    assert metric(server, "beatra_deployment_cooling") == [
        'beatra_deployment_cooling{deployment="gpt-test#0"} 1.0'
    ]
    assert ask(server, "auto").json()["model"] == "claude-test"
    assert openai_fake.plan.calls == 1  # resting: not even tried
    clock.advance(31)
    assert ask(server, "auto").json()["model"] == "gpt-test"
    assert metric(server, "beatra_deployment_cooling") == []


def test_breaker_opens_after_consecutive_failures_and_half_opens_later(
    gateway_factory: GatewayFactory, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    server, clock = start(
        gateway_factory, openai_fake, anthropic_fake, cooldown_failures=3, cooldown_s=30.0
    )
    plan = openai_fake.plan
    plan.push("status", times=3, status=500)
    assert ask(server).status_code == 502  # failures 1 and 2
    assert ask(server).status_code == 502  # failure 3 opens the breaker: no second attempt
    assert plan.calls == 3
    unavailable = ask(server)
    assert unavailable.status_code == 503
    assert unavailable.json()["error"]["code"] == "model_unavailable"
    assert plan.calls == 3  # fast, without hammering the provider
    clock.advance(29)
    assert ask(server).status_code == 503
    clock.advance(2)
    plan.push("status", status=500)
    assert ask(server).status_code == 502  # the half-open trial failed: rests again at once
    assert plan.calls == 4
    assert ask(server).status_code == 503
    clock.advance(31)
    assert ask(server).status_code == 200  # the trial succeeded: closed again
    plan.push("status", status=500)
    assert ask(server).status_code == 200  # one failure after a success is just retried
    assert plan.calls == 7


def test_client_errors_are_not_retried_nor_sent_elsewhere(
    gateway_factory: GatewayFactory, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    server, _ = start(gateway_factory, openai_fake, anthropic_fake)
    openai_fake.plan.push("status", status=422, message="unsupported parameter: logit_bias")
    response = ask(server, "auto")
    assert response.status_code == 400
    assert openai_fake.plan.calls == 1 and anthropic_fake.plan.calls == 0


def test_a_reset_in_a_body_that_ends_at_eof_is_retried_and_never_taken_as_the_answer(
    gateway_factory: GatewayFactory, anthropic_fake: Upstream
) -> None:
    answer = orjson.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "upstream-gpt",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "whole"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    )
    refusal = b'{"error":{"message":"bad request","type":"invalid_request_error"}}'

    async def script(request: Request, writer: asyncio.StreamWriter, index: int) -> bool:
        # No length, no chunks: the body ends when the connection does.
        if index < 2:  # both attempts of the first call: a 400 whose body a reset cuts short
            writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\r\n")
            writer.write(refusal[:20])
            return await reset(writer)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n" + answer)
        return False  # a clean close: the body is whole

    with serve_in_thread(script) as (raw, url):
        server = gateway_factory(base_config(url, anthropic_fake.url))
        response = ask(server)
        # Not the provider's verdict (a 400, never retried): a failed transfer, retried.
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "upstream_error"
        assert len(raw.requests) == 2
        response = ask(server)  # the same framing, ended by a clean close: a whole answer
        assert response.status_code == 200
        assert response.json()["choices"][0]["message"]["content"] == "whole"
        assert len(raw.requests) == 3
