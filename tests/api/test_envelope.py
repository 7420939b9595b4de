"""Every error code reachable on the chat surface, with raw httpx: status, envelope, headers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import (
    ANTHROPIC_SECRET,
    DEV_KEY,
    OPENAI_SECRET,
    OTHER_KEY,
    CapturedLogs,
    Upstream,
    auth,
    base_config,
    wait_until,
)
from tests.fakes.server import UvicornServer

CHAT = "/v1/chat/completions"
BODY: dict[str, Any] = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    request_id = response.headers["x-request-id"]
    error = response.json()["error"]
    assert error["code"] == code
    assert error["request_id"] == request_id
    assert isinstance(error["retryable"], bool)
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], list)
    # No leak of upstream addresses or secrets, whatever happened.
    for secret in ("127.0.0.1", OPENAI_SECRET, ANTHROPIC_SECRET, DEV_KEY, "Traceback"):
        assert secret not in response.text
    return dict(error)


def post(server: UvicornServer, body: Any = None, **kwargs: Any) -> httpx.Response:
    headers = kwargs.pop("headers", auth())
    if body is None:
        body = BODY
    return httpx.post(server.url + CHAT, json=body, headers=headers, timeout=10, **kwargs)


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, ["model"]),
        ({"model": "gpt-test"}, ["messages"]),
        ({"model": "gpt-test", "messages": []}, ["messages"]),
        (
            {"model": "gpt-test", "messages": [{"role": "robot", "content": "x"}]},
            ["messages[0].role"],
        ),
        (
            {"model": "gpt-test", "messages": [{"role": "user", "content": 5}]},
            ["messages[0].content"],
        ),
        ({**BODY, "temperature": 2.5}, ["temperature"]),
        ({**BODY, "temperature": "hot"}, ["temperature"]),
        ({**BODY, "temperature": 0.5, "top_p": 0.5}, ["top_p"]),
        ({**BODY, "max_tokens": 0}, ["max_tokens"]),
        ({**BODY, "max_tokens": True}, ["max_tokens"]),
        ({**BODY, "stream": "yes"}, ["stream"]),
        ({**BODY, "n": 0, "stop": 3}, ["n", "stop"]),
        ({**BODY, "stream_options": {"include_usage": True}}, ["stream_options"]),
        ({"model": 1, "messages": "hi", "top_p": 9}, ["model", "messages", "top_p"]),
    ],
)
def test_invalid_request_lists_every_offending_field(
    gateway: UvicornServer, openai_fake: Upstream, body: Any, fields: list[str]
) -> None:
    error = assert_envelope(post(gateway, body), 400, "invalid_request")
    assert [d["field"] for d in error["details"]] == fields
    assert error["type"] == "invalid_request_error" and error["retryable"] is False
    assert openai_fake.plan.calls == 0


@pytest.mark.parametrize(
    "raw", [b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe{}", b"[" * 5000 + b"]" * 5000]
)
def test_malformed_json_bodies(gateway: UvicornServer, raw: bytes) -> None:
    response = httpx.post(
        gateway.url + CHAT,
        content=raw,
        headers={**auth(), "content-type": "application/json"},
    )
    error = assert_envelope(response, 400, "invalid_request")
    assert error["details"][0]["field"] == "body"


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Basic abc"}, {"authorization": "Token x"}, {"authorization": "Bearer"}],
)
def test_missing_api_key(gateway: UvicornServer, headers: dict[str, str]) -> None:
    error = assert_envelope(post(gateway, headers=headers), 401, "missing_api_key")
    assert error["type"] == "authentication_error"


def test_invalid_and_disabled_keys(
    gateway_factory: Any, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    config = base_config(openai_fake.url, anthropic_fake.url)
    config["keys"]["off"] = {"sha256": "ab" * 32, "disabled": True}
    server = gateway_factory(config)
    assert_envelope(post(server, headers=auth("nope")), 401, "invalid_api_key")
    # A disabled key is indistinguishable from an unknown one.
    assert_envelope(post(server, headers=auth("bearer-of-ab")), 401, "invalid_api_key")
    response = post(server, headers={"authorization": f"bearer {DEV_KEY}"})
    assert response.status_code == 200  # the scheme is case-insensitive


def test_permission_denied_for_a_model_the_key_may_not_use(gateway: UvicornServer) -> None:
    error = assert_envelope(post(gateway, headers=auth(OTHER_KEY)), 403, "permission_denied")
    assert error["type"] == "permission_error"
    # ...while its own model works, and auto only routes to what the key may use.
    assert (
        post(gateway, {**BODY, "model": "local-chat"}, headers=auth(OTHER_KEY)).status_code == 200
    )
    auto = post(gateway, {**BODY, "model": "auto"}, headers=auth(OTHER_KEY))
    assert auto.json()["model"] == "local-chat"


def test_a_denied_alias_is_named_as_sent_never_by_the_hidden_model(
    gateway_factory: Any, openai_fake: Upstream
) -> None:
    config = base_config(openai_fake.url)
    config["models"]["secret-model"] = {"provider": "openai", "model": "secret-upstream"}
    config["routing"]["aliases"] = {"gpt-4o": "secret-model"}
    server = gateway_factory(config)
    listed = httpx.get(server.url + "/v1/models", headers=auth(OTHER_KEY)).json()
    assert "secret-model" not in {m["id"] for m in listed["data"]}
    response = post(server, {**BODY, "model": "gpt-4o"}, headers=auth(OTHER_KEY))
    error = assert_envelope(response, 403, "permission_denied")
    assert "'gpt-4o'" in error["message"]
    assert "secret" not in response.text
    assert openai_fake.plan.calls == 0


def test_not_found_and_method_not_allowed(gateway: UvicornServer) -> None:
    assert_envelope(httpx.get(gateway.url + "/v1/nothing-here", headers=auth()), 404, "not_found")
    assert_envelope(httpx.get(gateway.url + "/"), 404, "not_found")
    response = httpx.get(gateway.url + CHAT, headers=auth())
    assert_envelope(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"
    assert_envelope(post(gateway, {**BODY, "model": "gpt-5-imaginary"}), 404, "model_not_found")


def test_every_v1_path_but_health_needs_a_key_before_404_or_405(gateway: UvicornServer) -> None:
    url = gateway.url
    for method, path in [("POST", "/v1/no/such/route"), ("GET", "/v1/nothing"), ("GET", CHAT)]:
        assert_envelope(httpx.request(method, url + path), 401, "missing_api_key")
        bad = httpx.request(method, url + path, headers=auth("wrong-key"))
        assert_envelope(bad, 401, "invalid_api_key")
    assert_envelope(httpx.post(url + "/v1/no/such/route", headers=auth()), 404, "not_found")
    assert_envelope(httpx.delete(url + "/v1/models", headers=auth()), 405, "method_not_allowed")
    # Health and the paths outside /v1 answer as before, without a key.
    assert_envelope(httpx.post(url + "/v1/health"), 405, "method_not_allowed")
    assert httpx.get(url + "/v1/health").status_code == 200
    assert_envelope(httpx.get(url + "/nowhere"), 404, "not_found")
    assert_envelope(httpx.post(url + "/metrics"), 405, "method_not_allowed")
    assert httpx.get(url + "/openapi.json").status_code == 200


def test_payload_too_large_declared_and_streamed(gateway: UvicornServer) -> None:
    big = {**BODY, "messages": [{"role": "user", "content": "x" * 70_000}]}
    assert_envelope(post(gateway, big), 413, "payload_too_large")

    def chunks() -> Any:
        for _ in range(100):
            yield b" " * 1024  # no Content-Length: counted while it arrives

    response = httpx.post(
        gateway.url + CHAT,
        content=chunks(),
        headers={**auth(), "content-type": "application/json"},
    )
    assert_envelope(response, 413, "payload_too_large")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_unsupported_media_type(gateway: UvicornServer, content_type: str | None) -> None:
    headers = auth()
    if content_type:
        headers["content-type"] = content_type
    response = httpx.post(gateway.url + CHAT, content=b"{}", headers=headers)
    assert_envelope(response, 415, "unsupported_media_type")


def test_upstream_client_error_becomes_invalid_request(
    gateway: UvicornServer, openai_fake: Upstream
) -> None:
    plan = openai_fake.plan
    plan.push("status", status=400, message="This model's maximum context length is 10 tokens")
    error = assert_envelope(post(gateway), 400, "invalid_request")
    assert "maximum context length" in error["message"]
    assert plan.calls == 1  # a client mistake is neither retried nor sent elsewhere


def test_a_provider_echoing_its_key_never_shows_it_to_the_client(
    gateway: UvicornServer, openai_fake: Upstream, logs: CapturedLogs
) -> None:
    """The provider secret and the client's key appear in no answer, header or log line."""
    plan = openai_fake.plan
    plan.push("status", status=400, message=f"Bad request for key {OPENAI_SECRET} from caller")
    response = post(gateway)
    error = assert_envelope(response, 400, "invalid_request")
    assert "[redacted]" in error["message"]
    assert plan.requests[0].headers["authorization"] == f"Bearer {OPENAI_SECRET}"  # it was sent
    wait_until(lambda: response.headers["x-request-id"] in logs.text())
    seen = response.text + str(response.headers) + logs.text()
    seen += httpx.get(gateway.url + "/metrics").text
    assert OPENAI_SECRET not in seen and DEV_KEY not in seen


# What an upstream 400 may echo: the provider's key cut short and re-cased, another provider's
# key, its own model id, internal hosts and addresses, a cloud resource, a token and an account.
LEAKS = (
    OPENAI_SECRET[:-2],
    OPENAI_SECRET.upper(),
    ANTHROPIC_SECRET[2:12],
    "upstream-gpt",
    "claude-upstream",
    "vllm-7.corp.internal:8443",
    "10.1.2.3",
    "fd00::1:2",
    "myres.openai.azure.com",
    "Bearer abc123def456ghi789",
    "org-AbCdEf123456",
)


@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_400_reaches_the_client_scrubbed_with_its_param(
    gateway: UvicornServer, openai_fake: Upstream, stream: bool
) -> None:
    plan = openai_fake.plan
    message = "Model upstream-gpt refused: " + ", ".join(LEAKS)
    plan.push("status", status=400, message=message, param="messages[0].content")
    response = post(gateway, {**BODY, "stream": stream})
    error = assert_envelope(response, 400, "invalid_request")
    for leak in LEAKS:
        assert leak not in response.text and leak.lower() not in response.text.lower(), leak
    assert "Model gpt-test refused" in error["message"]  # the catalog id the client knows
    assert error["param"] == "messages[0].content"
    issue = error["message"].removeprefix("The provider rejected the request: ")
    assert error["details"] == [{"field": "messages[0].content", "issue": issue}]


def test_an_upstream_param_that_is_no_field_path_is_not_passed_on(
    gateway: UvicornServer, openai_fake: Upstream
) -> None:
    openai_fake.plan.push("status", status=400, message="no", param=f"x {OPENAI_SECRET}")
    error = assert_envelope(post(gateway), 400, "invalid_request")
    assert error["param"] == "body"


def test_an_anthropic_400_reaches_the_client_scrubbed(
    gateway: UvicornServer, anthropic_fake: Upstream
) -> None:
    message = "Model claude-upstream refused: " + ", ".join(LEAKS)
    anthropic_fake.plan.push("status", status=400, message=message)
    response = post(gateway, {**BODY, "model": "claude-test"})
    error = assert_envelope(response, 400, "invalid_request")
    for leak in LEAKS:
        assert leak not in response.text and leak.lower() not in response.text.lower(), leak
    assert "Model claude-test refused" in error["message"]


def test_upstream_auth_failure_is_not_the_clients_401_and_rests_the_deployment(
    gateway: UvicornServer, openai_fake: Upstream
) -> None:
    plan = openai_fake.plan
    plan.push("status", status=401, message="Incorrect API key provided: sk-abc123456789")
    error = assert_envelope(post(gateway), 502, "upstream_error")
    assert "sk-abc" not in str(error)
    assert plan.calls == 1  # wrong operator credentials: retrying the same deployment is futile
    # The deployment now rests: its only model fails fast without calling the provider.
    error = assert_envelope(post(gateway), 503, "model_unavailable")
    assert error["retryable"] is True
    assert plan.calls == 1
    # auto skips the resting deployment and is served by the next model.
    response = post(gateway, {**BODY, "model": "auto"})
    assert response.status_code == 200 and response.json()["model"] == "claude-test"


def test_malformed_upstream_body(gateway: UvicornServer, openai_fake: Upstream) -> None:
    openai_fake.plan.push("malformed", times=2)
    assert_envelope(post(gateway), 502, "upstream_error")
    assert openai_fake.plan.calls == 2


def test_upstream_timeout(
    gateway_factory: Any, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    config = base_config(openai_fake.url, anthropic_fake.url)
    config["providers"]["openai"]["read_timeout_s"] = 0.2
    config["relay"]["attempts_per_deployment"] = 1
    server = gateway_factory(config)
    openai_fake.plan.push("slow", delay=2.0)
    error = assert_envelope(post(server), 504, "upstream_timeout")
    assert error["retryable"] is True and error["type"] == "api_error"


def test_connection_refused_and_reset(
    gateway_factory: Any, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    refused = gateway_factory(base_config("http://127.0.0.1:9", anthropic_fake.url))
    assert_envelope(post(refused), 502, "upstream_error")
    server = gateway_factory(base_config(openai_fake.url, anthropic_fake.url))
    openai_fake.plan.push("reset", times=2)
    assert_envelope(post(server), 502, "upstream_error")
    assert openai_fake.plan.calls == 2  # retried once on the same deployment


def test_request_id_is_kept_when_valid_and_replaced_when_not(gateway: UvicornServer) -> None:
    kept = httpx.get(gateway.url + "/v1/health", headers={"x-request-id": "client-1.2:3_x"})
    assert kept.headers["x-request-id"] == "client-1.2:3_x"
    for bad in ("has space", "x" * 129, "new\\nline", "é"):
        response = httpx.get(gateway.url + "/v1/nope", headers={b"x-request-id": bad.encode()})
        generated = response.headers["x-request-id"]
        assert generated.startswith("req_") and len(generated) == 30
        assert response.json()["error"]["request_id"] == generated
    streamed = httpx.post(
        gateway.url + CHAT,
        json={**BODY, "model": "local-chat", "stream": True},
        headers={**auth(), "x-request-id": "stream-id"},
    )
    assert streamed.headers["x-request-id"] == "stream-id"


def test_health_needs_no_key_and_never_calls_upstream(
    gateway: UvicornServer, openai_fake: Upstream
) -> None:
    response = httpx.get(gateway.url + "/v1/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok" and response.json()["version"]
    assert openai_fake.plan.calls == 0
