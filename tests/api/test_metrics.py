"""What ``GET /metrics`` reports, against a real gateway: the exact movements a scripted sequence
of requests causes, disconnects and cancelled upstream calls, the metrics token, and that no key,
provider secret or prompt ever reaches the logs or the metrics.

The deploy/ artefacts built on these metrics (dashboard, scrape config, alerts) are checked in
``test_metrics_ops.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import create_app
from gateway.config.settings import settings_from_dict
from tests.conftest import (
    DEV_KEY,
    OPENAI_SECRET,
    TEST_ENV,
    CapturedLogs,
    Upstream,
    auth,
    base_config,
    wait_until,
)
from tests.fakes.faults import FaultPlan
from tests.fakes.server import UvicornServer

CHAT = "/v1/chat/completions"
REQUESTS = "beatra_http_requests_total"
UPSTREAM = "beatra_upstream_requests_total"
Labels = tuple[tuple[str, str], ...]
Samples = dict[tuple[str, Labels], float]


def scrape(server: UvicornServer, headers: dict[str, str] | None = None) -> Samples:
    """Every sample of ``/metrics`` as ``(sample name, sorted labels) -> value``."""
    response = httpx.get(server.url + "/metrics", headers=headers, timeout=5)
    assert response.status_code == 200, response.text
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def series(samples: Samples, name: str, *label_names: str) -> dict[tuple[str, ...], float]:
    """The samples called ``name`` summed by the values of ``label_names`` (in that order)."""
    found: dict[tuple[str, ...], float] = {}
    for (sample_name, labels), value in samples.items():
        if sample_name == name:
            as_dict = dict(labels)
            key = tuple(as_dict[label] for label in label_names)
            found[key] = found.get(key, 0.0) + value
    return found


def settled(
    server: UvicornServer,
    condition: Callable[[Samples], bool],
    headers: dict[str, str] | None = None,
) -> Samples:
    """Scrape until ``condition`` holds: a request is counted just after its response is sent."""
    last: list[Samples] = []

    def holds() -> bool:
        last[:] = [scrape(server, headers)]
        return condition(last[0])

    wait_until(holds)
    return last[0]


def served(samples: Samples) -> float:
    """Requests counted so far, the scrapes themselves left out."""
    return sum(
        value
        for (route, _method, _status), value in series(
            samples, REQUESTS, "route", "method", "status"
        ).items()
        if route != "/metrics"
    )


def idle(samples: Samples) -> bool:
    # The scrape that reads the gauge is itself a request in flight.
    return samples[("beatra_inflight_requests", ())] == 1 and (
        samples[("beatra_open_streams", ())] == 0
    )


def chat(server: UvicornServer, model: str, messages: int = 1, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}] * messages, **extra}
    return httpx.post(server.url + CHAT, json=body, headers=auth(), timeout=10)


def stream_usage(server: UvicornServer, model: str) -> dict[str, int]:
    """Stream a chat completion to its end; the usage the last chunk reports."""
    response = chat(server, model, stream=True, stream_options={"include_usage": True})
    assert response.status_code == 200
    events = [block[6:] for block in response.content.split(b"\n\n") if block]
    assert events[-1] == b"[DONE]"
    usage: dict[str, int] = orjson.loads(events[-2])["usage"]
    return usage


def test_counters_move_by_exactly_what_the_requests_caused(
    gateway: UvicornServer, openai_fake: Upstream
) -> None:
    for _ in range(3):
        response = chat(gateway, "gpt-test")
        assert response.json()["usage"]["prompt_tokens"] == 10
    local = [stream_usage(gateway, "local-chat") for _ in range(2)]
    bad_key = {"authorization": "Bearer not-a-key"}
    assert httpx.post(gateway.url + CHAT, json={}, headers=bad_key).status_code == 401
    assert httpx.get(gateway.url + "/v1/no-such-route", headers=auth()).status_code == 404
    openai_fake.plan.push("status", status=500)
    assert chat(gateway, "gpt-test", messages=2).status_code == 200  # a retry, then success
    assert openai_fake.plan.calls == 5

    samples = settled(gateway, lambda s: served(s) == 8 and idle(s))

    requests = series(samples, REQUESTS, "route", "method", "status")
    assert {labels: n for labels, n in requests.items() if labels[0] != "/metrics"} == {
        (CHAT, "POST", "200"): 6,
        (CHAT, "POST", "401"): 1,
        ("unmatched", "GET", "404"): 1,
    }
    assert series(samples, UPSTREAM, "provider", "model", "outcome") == {
        ("openai", "gpt-test", "ok"): 4,
        ("openai", "gpt-test", "server_error"): 1,
        ("local", "local-chat", "ok"): 2,
    }
    assert series(samples, "beatra_retries_total", "model") == {("gpt-test",): 1}
    assert series(samples, "beatra_fallbacks_total", "model") == {}
    assert series(samples, "beatra_tokens_total", "model", "kind") == {
        ("gpt-test", "prompt"): 3 * 10 + 20,
        ("gpt-test", "completion"): 4 * 6,  # six reply words per answer
        ("local-chat", "prompt"): sum(u["prompt_tokens"] for u in local),
        ("local-chat", "completion"): sum(u["completion_tokens"] for u in local),
    }
    durations = series(samples, "beatra_http_request_duration_seconds_count", "route")
    assert durations[(CHAT,)] == 7 and durations[("unmatched",)] == 1
    # Only requests that reached an upstream have an overhead; only streams a first token.
    assert series(samples, "beatra_gateway_overhead_seconds_count", "route") == {(CHAT,): 6}
    assert series(samples, "beatra_time_to_first_token_seconds_count", "model") == {
        ("local-chat",): 2
    }
    assert series(samples, "beatra_upstream_duration_seconds_count", "provider", "model") == {
        ("openai", "gpt-test"): 5,
        ("local", "local-chat"): 2,
    }
    assert series(samples, "beatra_client_disconnects_total", "route") == {}
    assert series(samples, "beatra_deployment_cooling", "deployment") == {}


def test_a_stream_abandoned_midway_is_a_disconnect(
    gateway: UvicornServer, openai_fake: Upstream
) -> None:
    openai_fake.plan.chunk_gap = 0.2
    body = {"model": "gpt-test", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with (
        httpx.Client(timeout=5) as client,
        client.stream("POST", gateway.url + CHAT, json=body, headers=auth()) as response,
    ):
        assert response.status_code == 200
        assert next(response.iter_raw()).startswith(b"data: ")
    # The client is gone: the gateway closes the upstream stream and counts a 499.
    samples = settled(
        gateway,
        lambda s: series(s, "beatra_client_disconnects_total", "route") == {(CHAT,): 1} and idle(s),
    )
    requests = series(samples, REQUESTS, "route", "status")
    assert requests[(CHAT, "499")] == 1 and (CHAT, "200") not in requests
    # The relay had already returned with the first chunk: that attempt succeeded.
    assert series(samples, UPSTREAM, "outcome") == {("ok",): 1}
    assert series(samples, "beatra_time_to_first_token_seconds_count", "model") == {
        ("gpt-test",): 1
    }
    wait_until(lambda: openai_fake.plan.cancelled_streams == 1)


def test_a_client_leaving_during_the_upstream_call_cancels_the_attempt(
    gateway: UvicornServer, openai_fake: Upstream
) -> None:
    openai_fake.plan.push("slow", delay=5)
    chat_body = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(gateway.url + CHAT, json=chat_body, headers=auth(), timeout=0.3)
    samples = settled(
        gateway,
        lambda s: series(s, UPSTREAM, "outcome") == {("canceled",): 1} and idle(s),
    )
    assert series(samples, "beatra_client_disconnects_total", "route") == {(CHAT,): 1}
    assert series(samples, REQUESTS, "route", "status")[(CHAT, "499")] == 1
    assert series(samples, "beatra_upstream_duration_seconds_count", "model") == {("gpt-test",): 1}
    assert series(samples, "beatra_retries_total", "model") == {}
    assert series(samples, "beatra_tokens_total", "model", "kind") == {}
    wait_until(lambda: openai_fake.plan.abandoned_requests == 1)


def test_metrics_token_protects_the_endpoint(openai_fake: Upstream) -> None:
    config = base_config(openai_fake.url)
    config["server"]["metrics_token_env"] = "SOME_ENV"
    settings = settings_from_dict(config, {**TEST_ENV, "SOME_ENV": "tok"})
    server = UvicornServer(create_app(settings)).start()
    try:
        for headers in ({}, {"authorization": "Bearer wrong"}, auth()):
            refused = httpx.get(server.url + "/metrics", headers=headers)
            assert refused.status_code == 401
            error = refused.json()["error"]
            assert error["code"] == "invalid_api_key"
            assert error["request_id"] == refused.headers["x-request-id"]
            assert b"beatra_" not in refused.content
        token = {"authorization": "Bearer tok"}
        settled(  # the three refusals were counted, under the route template
            server,
            lambda s: series(s, REQUESTS, "route", "status") == {("/metrics", "401"): 3},
            token,
        )
    finally:
        server.stop()


PROMPT = "zebra-canary-prompt-4417"
PLANTED = (DEV_KEY, OPENAI_SECRET, PROMPT)


def logged_ids(logs: CapturedLogs) -> set[str]:
    return {line["request_id"] for line in logs.lines() if line["event"] == "request"}


def planted_requests(server: UvicornServer, plan: FaultPlan) -> list[httpx.Response]:
    """Successes and failures with the key, the provider secret and a prompt in every field."""
    mixed = f"{DEV_KEY}-{OPENAI_SECRET}-{PROMPT}"
    headers = {
        **auth(),
        "x-request-id": f"{DEV_KEY}/{OPENAI_SECRET}/{PROMPT}",  # invalid: replaced, not logged
        "idempotency-key": mixed,
    }
    body = {
        "model": "gpt-test",
        "user": mixed,
        "stop": [PROMPT, OPENAI_SECRET],
        "messages": [{"role": "user", "content": f"{PROMPT} {DEV_KEY} {OPENAI_SECRET}"}],
    }
    query = {"api_key": DEV_KEY, "secret": OPENAI_SECRET, "q": PROMPT}
    url = server.url + CHAT

    def post(extra: dict[str, Any], **header_changes: str) -> httpx.Response:
        sent = {**headers, **header_changes}
        return httpx.post(url, params=query, json={**body, **extra}, headers=sent, timeout=10)

    sent = [
        post({}),  # ok
        post({}),  # an idempotent replay
        post({"model": "local-chat", "stream": True}, **{"idempotency-key": PROMPT}),
        post({}, authorization=f"Bearer {OPENAI_SECRET}{PROMPT}"),  # 401
        post({"messages": [{"role": PROMPT, "content": OPENAI_SECRET}]}),  # 400
        post({}, **{"idempotency-key": f"{mixed} not visible ascii"}),  # 400
        post({"temperature": 1}),  # 409: same key, other body
    ]
    plan.push("status", times=2, status=500, message=f"{OPENAI_SECRET} {PROMPT}")
    sent.append(post({}, **{"idempotency-key": f"{PROMPT}-fails"}))  # 502 after a retry
    sent.append(httpx.get(f"{server.url}/v1/{DEV_KEY}/{OPENAI_SECRET}/{PROMPT}", params=query))
    sent.append(httpx.get(f"{server.url}/v1/models/{PROMPT}{OPENAI_SECRET}", headers=headers))
    return sent


def test_keys_secrets_and_prompts_never_reach_logs_or_metrics(
    gateway: UvicornServer, openai_fake: Upstream, logs: CapturedLogs
) -> None:
    responses = planted_requests(gateway, openai_fake.plan)
    statuses = [r.status_code for r in responses]
    assert statuses == [200, 200, 200, 401, 400, 400, 409, 502, 401, 404]
    assert responses[1].headers["idempotent-replayed"] == "true"
    assert responses[2].text.endswith("data: [DONE]\n\n")
    assert openai_fake.plan.requests[0].body["user"].startswith(DEV_KEY)  # all went upstream

    ids = {r.headers["x-request-id"] for r in responses}
    wait_until(lambda: ids <= logged_ids(logs))  # each is logged just after its response
    settled(gateway, lambda s: served(s) == len(responses) and idle(s))
    metrics_text = httpx.get(gateway.url + "/metrics").text
    assert "beatra_tokens_total{" in metrics_text
    for secret in PLANTED:
        assert secret not in logs.text(), secret
        assert secret not in metrics_text, secret


def test_an_unknown_model_name_is_not_logged_verbatim(
    gateway: UvicornServer, logs: CapturedLogs
) -> None:
    body = {"model": f"{PROMPT}-{OPENAI_SECRET}", "messages": [{"role": "user", "content": "x"}]}
    response = httpx.post(gateway.url + CHAT, json=body, headers=auth())
    assert response.json()["error"]["code"] == "model_not_found"
    wait_until(lambda: response.headers["x-request-id"] in logged_ids(logs))
    assert OPENAI_SECRET not in logs.text() and PROMPT not in logs.text()
