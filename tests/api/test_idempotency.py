"""Idempotency-Key exactly per the contract: one upstream call per key, byte-exact replays."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

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
BODY: dict[str, Any] = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}


def post(
    server: UvicornServer, key: str, body: Any = None, api_key: str | None = None
) -> httpx.Response:
    headers = {**(auth(api_key) if api_key else auth()), "idempotency-key": key}
    return httpx.post(server.url + CHAT, json=BODY if body is None else body, headers=headers)


def start(
    factory: GatewayFactory, openai: Upstream, anthropic: Upstream, **idempotency: Any
) -> tuple[UvicornServer, FakeClock]:
    config = base_config(openai.url, anthropic.url)
    config["idempotency"] = idempotency
    clock = FakeClock()
    return factory(config, clock=clock), clock


def test_concurrent_duplicates_make_one_upstream_call_and_get_one_answer(
    gateway: UvicornServer, openai_fake: Upstream
) -> None:
    openai_fake.plan.push("slow", delay=0.5)

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=gateway.url, limits=limits, timeout=20) as client:
            headers = {**auth(), "idempotency-key": "burst-1"}
            return await asyncio.gather(
                *(client.post(CHAT, json=BODY, headers=headers) for _ in range(100))
            )

    responses = asyncio.run(burst())
    assert openai_fake.plan.calls == 1
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    replayed = [r for r in responses if r.headers.get("idempotent-replayed") == "true"]
    assert len(replayed) == 99
    assert len({r.headers["x-request-id"] for r in responses}) == 100


def test_replay_needs_no_upstream_and_keys_are_scoped_per_api_key(
    gateway: UvicornServer, openai_fake: Upstream
) -> None:
    first = post(gateway, "k-1")
    assert first.status_code == 200 and "idempotent-replayed" not in first.headers
    openai_fake.plan.push("status", times=10, status=500)  # the upstream is down now
    again = post(gateway, "k-1")
    assert again.status_code == 200 and again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["content-type"] == "application/json"
    assert openai_fake.plan.calls == 1
    # The same key from another API key is another request entirely.
    assert post(gateway, "k-1", api_key=SECOND_KEY).status_code == 502
    assert openai_fake.plan.calls > 1


def test_a_completed_stream_replays_as_the_same_events(
    gateway: UvicornServer, openai_fake: Upstream
) -> None:
    body = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
    first = post(gateway, "s-1", body)
    assert first.content.endswith(b"data: [DONE]\n\n")
    again = post(gateway, "s-1", body)
    assert again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"]
    assert again.headers["idempotent-replayed"] == "true"
    assert openai_fake.plan.calls == 1


def test_a_broken_stream_is_not_kept_so_a_retry_runs_again(
    gateway: UvicornServer, openai_fake: Upstream
) -> None:
    body = {**BODY, "stream": True}
    openai_fake.plan.push("cut", after=2)
    broken = post(gateway, "s-2", body)
    assert b"[DONE]" not in broken.content
    retried = post(gateway, "s-2", body)
    assert retried.content.endswith(b"data: [DONE]\n\n")
    assert "idempotent-replayed" not in retried.headers
    assert openai_fake.plan.calls == 2


def test_different_body_conflicts_but_the_same_json_does_not(
    gateway: UvicornServer, openai_fake: Upstream
) -> None:
    assert post(gateway, "c-1").status_code == 200
    conflict = post(gateway, "c-1", {**BODY, "temperature": 1})
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "idempotency_conflict"
    assert conflict.json()["error"]["retryable"] is False
    # Same JSON, other key order and spacing: the canonical body matches, so it replays.
    reordered = httpx.post(
        gateway.url + CHAT,
        content=b'{ "messages":[{"content":"hi","role":"user"}],  "model":"gpt-test" }',
        headers={**auth(), "idempotency-key": "c-1", "content-type": "application/json"},
    )
    assert reordered.headers["idempotent-replayed"] == "true"
    assert openai_fake.plan.calls == 1


def test_retryable_failures_are_not_kept_and_final_ones_are(
    gateway: UvicornServer, openai_fake: Upstream
) -> None:
    openai_fake.plan.push("status", times=2, status=503)
    assert post(gateway, "r-1").status_code == 502
    assert post(gateway, "r-1").status_code == 200  # the retry really ran again
    assert openai_fake.plan.calls == 3
    openai_fake.plan.push("status", status=400, message="bad parameter")
    final = post(gateway, "r-2")
    assert final.status_code == 400
    replay = post(gateway, "r-2")
    assert replay.status_code == 400 and replay.content == final.content
    # The stored envelope keeps the original request id in its body.
    assert replay.json()["error"]["request_id"] == final.headers["x-request-id"]
    assert replay.headers["x-request-id"] != final.headers["x-request-id"]
    assert openai_fake.plan.calls == 4


def test_invalid_keys_are_rejected(gateway: UvicornServer, openai_fake: Upstream) -> None:
    for bad in ("", "x" * 256, "has space"):
        response = post(gateway, bad)
        assert response.status_code == 400, bad
        assert response.json()["error"]["details"][0]["field"] == "Idempotency-Key"
    assert post(gateway, "x" * 255).status_code == 200
    assert openai_fake.plan.calls == 1


def test_waiting_too_long_is_in_progress(
    gateway_factory: GatewayFactory, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    server, _ = start(gateway_factory, openai_fake, anthropic_fake, wait_s=0.2)
    openai_fake.plan.push("slow", delay=1.5)

    async def both() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            headers = {**auth(), "idempotency-key": "w-1"}
            first = asyncio.create_task(client.post(CHAT, json=BODY, headers=headers))
            await asyncio.sleep(0.1)  # let the first one claim the key
            second = await client.post(CHAT, json=BODY, headers=headers)
            return await first, second

    first, second = asyncio.run(both())
    assert first.status_code == 200
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "idempotency_in_progress"
    assert second.json()["error"]["retryable"] is True
    assert openai_fake.plan.calls == 1


def test_oversized_response_is_answered_but_never_rerun(
    gateway_factory: GatewayFactory, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    server, _ = start(gateway_factory, openai_fake, anthropic_fake, max_response_bytes=64)
    assert post(server, "big-1").status_code == 200
    again = post(server, "big-1")
    assert again.status_code == 409
    assert "too large" in again.json()["error"]["message"]
    assert openai_fake.plan.calls == 1


def test_window_and_entry_cap_are_bounded(
    gateway_factory: GatewayFactory, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    server, clock = start(
        gateway_factory, openai_fake, anthropic_fake, window_s=86400, max_entries=2
    )
    for key in ("a", "b"):
        post(server, key)
    assert post(server, "a").headers["idempotent-replayed"] == "true"
    post(server, "c")  # the cap is 2: the oldest finished entry ("a") goes
    assert openai_fake.plan.calls == 3
    assert "idempotent-replayed" not in post(server, "a").headers
    assert openai_fake.plan.calls == 4
    assert post(server, "a").headers["idempotent-replayed"] == "true"
    clock.advance(86401)
    assert "idempotent-replayed" not in post(server, "a").headers  # the window is over
    assert openai_fake.plan.calls == 5
