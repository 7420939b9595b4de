"""Redis unreachable (frozen with SIGSTOP, so connections hang rather than fail fast): the
documented policy holds, no request hangs past the state timeout, and the gateway recovers by
itself once Redis answers again."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import (
    DEV_KEY,
    TEST_ENV,
    CapturedLogs,
    GatewayFactory,
    Upstream,
    auth,
    base_config,
)
from tests.redis_server import redis_server

CHAT = "/v1/chat/completions"
BODY = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}
STATE_TIMEOUT_S = 0.3
# No request waits more than two state timeouts: the call in flight when Redis hung, and one
# more (a request's first call made before it learns the store is down). Loose for the tests
# that only check the policy; exact for the one that measures it.
MAX_ANSWER_S = 5.0
PAUSED_P99_S = 2 * STATE_TIMEOUT_S
RECOVERY_S = 10.0


@contextmanager
def frozen(url: str) -> Iterator[None]:
    pid = int(redis.Redis.from_url(url).info("server")["process_id"])
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def redis_config(openai_url: str, url_env: str, fail_open: bool) -> dict[str, Any]:
    config = base_config(openai_url)
    config["state"] = {
        "backend": "redis",
        "redis_url_env": url_env,
        "timeout_s": STATE_TIMEOUT_S,
        "rate_limits_fail_open": fail_open,
        "key_prefix": f"down{int(fail_open)}:",
    }
    config["limits"] = {"key_rpm": 1000}
    return config


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        TEST_ENV["TEST_REDIS_URL"] = url
        yield url


def timed_post(url: str, **kwargs: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.post(url, timeout=30, **kwargs)
    return response, time.monotonic() - started


def test_fail_open_rate_limits_but_closed_idempotency_and_tasks(
    gateway_factory: GatewayFactory, openai_fake: Upstream, redis_url: str
) -> None:
    server = gateway_factory(redis_config(openai_fake.url, "TEST_REDIS_URL", fail_open=True))
    assert httpx.post(server.url + CHAT, json=BODY, headers=auth()).status_code == 200
    with frozen(redis_url):
        plain, took = timed_post(server.url + CHAT, json=BODY, headers=auth())
        assert plain.status_code == 200 and took < MAX_ANSWER_S  # rate limits fail open
        keyed, took = timed_post(
            server.url + CHAT, json=BODY, headers={**auth(), "idempotency-key": "k1"}
        )
        assert keyed.status_code == 503 and took < MAX_ANSWER_S
        error = keyed.json()["error"]
        assert error["code"] == "service_unavailable" and error["retryable"] is True
        calls = openai_fake.plan.calls
        music, took = timed_post(
            server.url + "/v1/music/generations",
            json={"model": "local-music", "prompt": "x"},
            headers=auth(),
        )
        assert music.status_code == 503 and took < MAX_ANSWER_S
        assert openai_fake.plan.calls == calls  # the keyed request never reached the upstream
    # Redis is back: the probe sees it, nothing to restart; the key was never claimed.
    again = answered_once_back(server.url, {**auth(), "idempotency-key": "k1"})
    assert again.status_code == 200 and "idempotent-replayed" not in again.headers


def answered_once_back(url: str, headers: dict[str, str]) -> httpx.Response:
    """The first answer that is not the store-down 503, within ``RECOVERY_S`` of Redis' return
    (the background probe notices it within two state timeouts)."""
    deadline = time.monotonic() + RECOVERY_S
    while True:
        response = httpx.post(url + CHAT, json=BODY, headers=headers, timeout=10)
        if response.status_code != 503 or time.monotonic() > deadline:
            return response
        time.sleep(STATE_TIMEOUT_S / 3)


def test_a_hung_redis_costs_a_plain_request_at_most_two_state_timeouts(
    gateway_factory: GatewayFactory, openai_fake: Upstream, redis_url: str
) -> None:
    server = gateway_factory(redis_config(openai_fake.url, "TEST_REDIS_URL", fail_open=True))
    assert httpx.post(server.url + CHAT, json=BODY, headers=auth()).status_code == 200
    with frozen(redis_url):
        timings = []
        for _ in range(20):
            response, took = timed_post(server.url + CHAT, json=BODY, headers=auth())
            assert response.status_code == 200  # rate limits fail open
            timings.append(took)
    # Every request, the first included, is within two timeouts; the rest do not wait at all.
    assert max(timings) <= PAUSED_P99_S, timings
    assert sorted(timings)[-2] < STATE_TIMEOUT_S, timings
    assert answered_once_back(server.url, auth()).status_code == 200


def test_fail_closed_rate_limits_answer_503(
    gateway_factory: GatewayFactory, openai_fake: Upstream, redis_url: str
) -> None:
    server = gateway_factory(redis_config(openai_fake.url, "TEST_REDIS_URL", fail_open=False))
    with frozen(redis_url):
        response, took = timed_post(server.url + CHAT, json=BODY, headers=auth(DEV_KEY))
        assert response.status_code == 503 and took < MAX_ANSWER_S
        assert response.json()["error"]["code"] == "service_unavailable"
    assert answered_once_back(server.url, auth(DEV_KEY)).status_code == 200


def test_answers_finished_while_redis_is_paused_reach_clients_and_replay_once_it_is_back(
    gateway_factory: GatewayFactory, openai_fake: Upstream, redis_url: str
) -> None:
    config = redis_config(openai_fake.url, "TEST_REDIS_URL", fail_open=True)
    config["state"]["key_prefix"] = "paid:"
    one, two = gateway_factory(config), gateway_factory(config)  # two replicas, one Redis
    for replica in (one, two):
        assert httpx.post(replica.url + CHAT, json=BODY, headers=auth()).status_code == 200
    calls_before = openai_fake.plan.calls
    openai_fake.plan.push("slow", times=4, delay=1.0)
    keys = [{**auth(), "idempotency-key": f"paid-{n}"} for n in range(4)]
    with ThreadPoolExecutor(4) as pool:
        sent = [pool.submit(timed_post, one.url + CHAT, json=BODY, headers=key) for key in keys]
        deadline = time.monotonic() + 5
        while openai_fake.plan.calls < calls_before + 4:  # all four are with the upstream
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with frozen(redis_url):  # Redis hangs while the upstream answers
            answers = [future.result()[0] for future in sent]
    assert [answer.status_code for answer in answers] == [200] * 4  # paid for: delivered
    # Redis is back: a retry on the other replica replays the same bytes; nothing runs twice.
    for key, answer in zip(keys, answers, strict=True):
        again = answered_once_back(two.url, key)
        assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
        assert again.content == answer.content
    assert openai_fake.plan.calls == calls_before + 4


def test_responses_are_answered_but_not_stored_while_redis_hangs(
    gateway_factory: GatewayFactory, openai_fake: Upstream, redis_url: str, logs: CapturedLogs
) -> None:
    server = gateway_factory(redis_config(openai_fake.url, "TEST_REDIS_URL", fail_open=True))
    url = server.url + "/v1/responses"
    stored = httpx.post(url, json={"model": "gpt-test", "input": "hi"}, headers=auth()).json()
    with frozen(redis_url):
        answered, took = timed_post(url, json={"model": "gpt-test", "input": "hi"}, headers=auth())
        assert answered.status_code == 200 and took < MAX_ANSWER_S  # the answer is not lost
        follow_up = {"model": "gpt-test", "input": "x", "previous_response_id": stored["id"]}
        continued, took = timed_post(url, json=follow_up, headers=auth())
        assert continued.status_code == 503 and took < MAX_ANSWER_S  # cannot be continued now
        read = httpx.get(f"{url}/{stored['id']}", headers=auth(), timeout=30)
        assert read.status_code == 503 and read.json()["error"]["code"] == "service_unavailable"
    lost = answered.json()["id"]
    assert any(line.get("event") == "response_not_stored" for line in logs.lines())
    deadline = time.monotonic() + RECOVERY_S
    while (read := httpx.get(f"{url}/{stored['id']}", headers=auth())).status_code == 503:
        assert time.monotonic() < deadline
        time.sleep(STATE_TIMEOUT_S / 3)
    assert read.status_code == 200 and read.json() == stored
    assert httpx.get(f"{url}/{lost}", headers=auth()).status_code == 404
