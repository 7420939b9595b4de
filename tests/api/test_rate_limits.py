"""Rate limits and load shedding: honest headers and Retry-After, on a fake clock."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from gateway.policy.ratelimit import prompt_estimate
from tests.conftest import (
    SECOND_KEY,
    FakeClock,
    GatewayFactory,
    Upstream,
    auth,
    base_config,
)
from tests.fakes.server import UvicornServer

CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "count my tokens please"}]
BODY: dict[str, Any] = {"model": "gpt-test", "messages": MESSAGES}


def start(
    factory: GatewayFactory,
    openai: Upstream,
    anthropic: Upstream,
    *,
    keys: dict[str, Any] | None = None,
    models: dict[str, Any] | None = None,
    limits: dict[str, Any] | None = None,
) -> tuple[UvicornServer, FakeClock]:
    config = base_config(openai.url, anthropic.url)
    for name, extra in (keys or {}).items():
        config["keys"][name].update(extra)
    for name, extra in (models or {}).items():
        config["models"][name].update(extra)
    config["limits"] = limits or {}
    clock = FakeClock()
    return factory(config, clock=clock), clock


def post(server: UvicornServer, body: Any = None, key: str | None = None) -> httpx.Response:
    headers = auth(key) if key else auth()
    return httpx.post(server.url + CHAT, json=BODY if body is None else body, headers=headers)


def test_requests_per_minute_count_down_and_retry_after_is_honest(
    gateway_factory: GatewayFactory, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    server, clock = start(gateway_factory, openai_fake, anthropic_fake, keys={"dev": {"rpm": 3}})
    remaining = []
    for _ in range(3):
        response = post(server)
        assert response.status_code == 200
        assert response.headers["x-ratelimit-limit-requests"] == "3"
        remaining.append(response.headers["x-ratelimit-remaining-requests"])
    assert remaining == ["2", "1", "0"]
    assert response.headers["x-ratelimit-reset-requests"] == "1m0s"
    refused = post(server)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "rate_limited" and error["retryable"] is True
    assert error["type"] == "rate_limit_error"
    assert refused.headers["retry-after"] == "20"  # one request refills in 60 s / 3
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert openai_fake.plan.calls == 3  # a refused request never reaches the upstream
    clock.advance(19)
    assert post(server).status_code == 429
    clock.advance(1)  # waiting exactly Retry-After is enough
    assert post(server).status_code == 200
    metrics = httpx.get(server.url + "/metrics").text
    assert 'beatra_rate_limited_total{scope="key"} 2.0' in metrics


def test_one_keys_limit_does_not_touch_another(
    gateway_factory: GatewayFactory, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    server, _ = start(gateway_factory, openai_fake, anthropic_fake, keys={"dev": {"rpm": 1}})
    assert post(server).status_code == 200
    assert post(server).status_code == 429
    for _ in range(5):
        response = post(server, key=SECOND_KEY)
        assert response.status_code == 200
        assert "x-ratelimit-limit-requests" not in response.headers  # unlimited key


def test_tokens_are_reserved_then_reconciled_with_real_stream_usage(
    gateway_factory: GatewayFactory, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    server, _ = start(gateway_factory, openai_fake, anthropic_fake, keys={"dev": {"tpm": 1000}})
    body = {**BODY, "stream": True, "max_tokens": 400}
    estimate = prompt_estimate(MESSAGES) + 400
    first = post(server, body)
    assert first.status_code == 200
    # Headers are sent with the stream's start: the whole estimate is reserved then.
    assert first.headers["x-ratelimit-remaining-tokens"] == str(1000 - estimate)
    # The fake streamed 5 completion tokens for 10 prompt tokens: 15 really used.
    second = post(server, body)
    assert second.headers["x-ratelimit-remaining-tokens"] == str(1000 - 15 - estimate)


def test_concurrent_long_streams_cannot_overshoot_the_token_budget(
    gateway_factory: GatewayFactory, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    server, _ = start(gateway_factory, openai_fake, anthropic_fake, keys={"dev": {"tpm": 1000}})
    openai_fake.plan.chunk_gap = 0.05
    body = {**BODY, "stream": True, "max_tokens": 600}

    async def two_at_once() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            first = asyncio.create_task(client.post(CHAT, json=body, headers=auth()))
            await asyncio.sleep(0.1)  # the first stream is under way, holding its reservation
            second = await client.post(CHAT, json=body, headers=auth())
            return await first, second

    first, second = asyncio.run(two_at_once())
    assert first.status_code == 200 and second.status_code == 429
    assert second.headers["x-ratelimit-limit-tokens"] == "1000"
    # Once the first finished and was reconciled, the budget has room again.
    assert post(server, body).status_code == 200


def test_an_oversized_request_is_admitted_alone_on_a_full_bucket(
    gateway_factory: GatewayFactory, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    server, clock = start(gateway_factory, openai_fake, anthropic_fake, keys={"dev": {"tpm": 100}})
    huge = {**BODY, "max_tokens": 5000}
    assert post(server, huge).status_code == 200
    refused = post(server, huge)
    assert refused.status_code == 429
    wait = int(refused.headers["retry-after"])
    clock.advance(wait)
    assert post(server, huge).status_code == 200


def test_model_limit_moves_auto_to_the_next_model_and_refuses_a_pinned_model(
    gateway_factory: GatewayFactory, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    server, _ = start(gateway_factory, openai_fake, anthropic_fake, models={"gpt-test": {"rpm": 1}})
    assert post(server, {**BODY, "model": "auto"}).json()["model"] == "gpt-test"
    assert post(server, {**BODY, "model": "auto"}).json()["model"] == "claude-test"
    pinned = post(server)
    assert pinned.status_code == 429
    assert "model" in pinned.json()["error"]["message"]
    assert openai_fake.plan.calls == 1


def test_default_limits_apply_to_keys_without_their_own(
    gateway_factory: GatewayFactory, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    server, _ = start(
        gateway_factory,
        openai_fake,
        anthropic_fake,
        limits={"key_rpm": 1},
        keys={"dev": {"rpm": 0}},
    )
    assert post(server).status_code == 200 and post(server).status_code == 200  # 0: unlimited
    assert post(server, key=SECOND_KEY).status_code == 200
    assert post(server, key=SECOND_KEY).status_code == 429


def test_concurrency_cap_sheds_load_with_an_envelope(
    gateway_factory: GatewayFactory, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    server, _ = start(gateway_factory, openai_fake, anthropic_fake, limits={"max_concurrency": 1})
    openai_fake.plan.push("slow", delay=0.6)

    async def overlap() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            first = asyncio.create_task(client.post(CHAT, json=BODY, headers=auth()))
            await asyncio.sleep(0.2)
            second = await client.post(CHAT, json=BODY, headers=auth())
            return await first, second

    first, second = asyncio.run(overlap())
    assert first.status_code == 200
    assert second.status_code == 503
    assert second.json()["error"]["code"] == "service_unavailable"
    assert second.headers["retry-after"] == "1"
    assert post(server).status_code == 200  # the slot is free again
