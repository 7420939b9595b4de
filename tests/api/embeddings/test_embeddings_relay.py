"""Embeddings through the relay, against the OpenAI fake's faults: retries, fallback, the
circuit breaker and the error mapping are chat's, and so are Idempotency-Key, rate limits,
metrics and the access log."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.embeddings.conftest import embed, embed_config
from tests.conftest import CapturedLogs, FakeClock, GatewayFactory, Upstream
from tests.fakes.server import UvicornServer

BODY = {"model": "embed-pair", "input": ["alpha", "beta"]}


def metric(server: UvicornServer, prefix: str) -> list[str]:
    text = httpx.get(server.url + "/metrics").text
    return [line for line in text.splitlines() if line.startswith(prefix)]


def test_a_server_error_is_retried_on_the_same_deployment(
    embed_gateway: UvicornServer, openai_fake: Upstream, openai_backup: Upstream
) -> None:
    openai_fake.plan.push("status", status=502)
    response = embed(embed_gateway, BODY)
    assert response.status_code == 200 and response.json()["model"] == "embed-pair"
    assert (openai_fake.plan.calls, openai_backup.plan.calls) == (2, 0)
    assert metric(embed_gateway, "beatra_retries_total") == [
        'beatra_retries_total{model="embed-pair"} 1.0'
    ]


@pytest.mark.parametrize(
    ("fault", "options"),
    [
        ("status", {"status": 503}),
        ("reset", {}),
        ("malformed", {}),
        ("cut", {}),
        ("status", {"status": 429, "headers": {"retry-after": "30"}}),
    ],
)
def test_failures_fall_back_to_the_next_deployment(
    embed_gateway: UvicornServer,
    openai_fake: Upstream,
    openai_backup: Upstream,
    fault: str,
    options: dict[str, Any],
) -> None:
    openai_fake.plan.push(fault, times=2, **options)
    response = embed(embed_gateway, BODY)
    assert response.status_code == 200, response.text
    assert openai_backup.plan.requests[-1].body["model"] == "backup-embed"
    assert response.json()["model"] == "embed-pair"  # the catalog id, whoever served
    assert metric(embed_gateway, "beatra_fallbacks_total") == [
        'beatra_fallbacks_total{model="embed-pair"} 1.0'
    ]


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (("status", {"status": 500}), (502, "upstream_error")),
        (("status", {"status": 401}), (502, "upstream_error")),
        (("status", {"status": 429, "headers": {"retry-after": "7"}}), (429, "rate_limited")),
        (("status", {"status": 504}), (504, "upstream_timeout")),
        (("slow", {"delay": 3.0}), (504, "upstream_timeout")),
    ],
)
def test_errors_are_mapped_as_chat_s_when_nothing_answers(
    embed_gateway: UvicornServer,
    openai_fake: Upstream,
    fault: tuple[str, dict[str, Any]],
    expected: tuple[int, str],
) -> None:
    name, options = fault
    status, code = expected
    openai_fake.plan.push(name, times=2, **options)
    response = embed(embed_gateway, {"model": "embed-test", "input": "x"})
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    if code == "rate_limited":
        assert response.headers["retry-after"] == "7"


def test_a_provider_400_is_invalid_request_with_its_param_and_is_not_retried(
    embed_gateway: UvicornServer, openai_fake: Upstream, openai_backup: Upstream
) -> None:
    openai_fake.plan.push(
        "status", status=400, message="This model does not support dimensions", param="dimensions"
    )
    response = embed(embed_gateway, {**BODY, "dimensions": 4})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_request", "dimensions")
    assert (openai_fake.plan.calls, openai_backup.plan.calls) == (1, 0)


def test_idempotency_key_replays_without_calling_the_provider_again(
    embed_gateway: UvicornServer, openai_fake: Upstream
) -> None:
    first = embed(embed_gateway, BODY, **{"idempotency-key": "emb-1"})
    again = embed(embed_gateway, BODY, **{"idempotency-key": "emb-1"})
    assert first.status_code == again.status_code == 200
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    assert openai_fake.plan.calls == 1
    other = embed(embed_gateway, {**BODY, "input": "other"}, **{"idempotency-key": "emb-1"})
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_conflict"


def test_usage_counts_toward_tpm_and_the_headers_say_so(
    gateway_factory: GatewayFactory, openai_fake: Upstream, openai_backup: Upstream
) -> None:
    config = embed_config(openai_fake, openai_backup)
    config["keys"]["dev"]["tpm"] = 100
    server = gateway_factory(config, clock=FakeClock())
    words = " ".join(["word"] * 30)  # the fake counts 30 prompt tokens; the estimate is 38
    first = embed(server, {"model": "embed-test", "input": words})
    assert first.status_code == 200 and first.json()["usage"]["prompt_tokens"] == 30
    assert first.headers["x-ratelimit-limit-tokens"] == "100"
    assert first.headers["x-ratelimit-remaining-tokens"] == "62"  # 100 - the reservation
    second = embed(server, {"model": "embed-test", "input": words})
    # Settled at the real 30, not the estimate: 100 - 30 - 38 left after the reservation.
    assert second.headers["x-ratelimit-remaining-tokens"] == "32"
    assert embed(server, {"model": "embed-test", "input": words}).status_code == 200
    # 10 left: the next reservation of 38 does not fit, and the provider is not called.
    refused = embed(server, {"model": "embed-test", "input": words})
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    assert openai_fake.plan.calls == 3


def test_metrics_and_the_access_log_report_embeddings_like_chat(
    embed_gateway: UvicornServer, logs: CapturedLogs
) -> None:
    assert embed(embed_gateway, {"model": "auto", "input": "alpha beta gamma"}).status_code == 200
    assert (
        'beatra_http_requests_total{method="POST",route="/v1/embeddings",status="200"} 1.0'
        in metric(embed_gateway, "beatra_http_requests_total")
    )
    assert metric(embed_gateway, "beatra_tokens_total") == [
        'beatra_tokens_total{kind="prompt",model="embed-test"} 3.0'
    ]
    (line,) = [entry for entry in logs.lines() if entry.get("route") == "/v1/embeddings"]
    assert line["model"] == "auto" and line["model_served"] == "embed-test"
    assert (line["provider"], line["attempts"], line["prompt_tokens"]) == ("openai", 1, 3)
    assert "alpha" not in logs.text()
