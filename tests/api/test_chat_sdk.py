"""The Available chat surface through the official ``openai`` SDK against a real server."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.conftest import DEV_KEY, OPENAI_SECRET, OTHER_KEY, Upstream, base_config
from tests.fakes.openai_upstream import REPLY_WORDS
from tests.fakes.server import UvicornServer


def client(server: UvicornServer, key: str = DEV_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=10)


MESSAGES: Any = [
    {"role": "system", "content": "You are concise."},
    {"role": "user", "content": "Say hi in five words."},
]


def test_sync_auto_is_answered_by_the_first_auto_model(
    gateway: UvicornServer, openai_fake: Upstream
) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(model="auto", messages=MESSAGES)
    answer = raw.parse()
    assert answer.model == "gpt-test"  # the catalog id, never the upstream's own id
    assert answer.choices[0].message.content == "".join(REPLY_WORDS)
    assert answer.usage is not None and answer.usage.total_tokens > 0
    assert raw.headers["x-request-id"].startswith("req_")
    sent = openai_fake.plan.requests[0]
    assert sent.body["model"] == "upstream-gpt"
    assert sent.headers["authorization"] == f"Bearer {OPENAI_SECRET}"
    assert sent.headers["x-request-id"] == raw.headers["x-request-id"]
    assert DEV_KEY not in str(sent.headers)  # the client's key never reaches a provider


def test_stream_through_openai_upstream_with_usage(
    gateway: UvicornServer, openai_fake: Upstream
) -> None:
    chunks = list(
        client(gateway).chat.completions.create(
            model="gpt-test",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "".join(REPLY_WORDS[:5])
    assert {c.model for c in chunks} == {"gpt-test"}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5
    assert openai_fake.plan.requests[0].body["stream_options"] == {"include_usage": True}


def test_stream_hides_usage_the_client_did_not_ask_for(
    gateway: UvicornServer, openai_fake: Upstream
) -> None:
    chunks = list(
        client(gateway).chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True)
    )
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)
    # ...although the gateway asked the upstream for it, to count tokens.
    assert openai_fake.plan.requests[0].body["stream_options"] == {"include_usage": True}


def test_anthropic_sync_and_stream(gateway: UvicornServer, anthropic_fake: Upstream) -> None:
    sdk = client(gateway)
    answer = sdk.chat.completions.create(model="claude-test", messages=MESSAGES, max_tokens=50)
    assert answer.model == "claude-test"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.choices[0].message.content
    sent = anthropic_fake.plan.requests[0]
    assert sent.body["system"] == "You are concise."
    assert sent.body["model"] == "claude-upstream"
    assert sent.headers["anthropic-version"]
    chunks = list(
        sdk.chat.completions.create(
            model="claude-test",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    # The fake streams its first ``chunk_count`` words of the same reply.
    assert streamed and (answer.choices[0].message.content or "").startswith(streamed)
    assert {c.model for c in chunks} == {"claude-test"}
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == answer.usage.prompt_tokens  # type: ignore[union-attr]


def test_local_model_sync_matches_stream(gateway: UvicornServer) -> None:
    sdk = client(gateway)
    answer = sdk.chat.completions.create(model="local-chat", messages=MESSAGES, seed=7)
    chunks = list(
        sdk.chat.completions.create(
            model="local-chat",
            messages=MESSAGES,
            seed=7,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == answer.choices[0].message.content
    assert chunks[-1].usage == answer.usage


@pytest.mark.parametrize(
    ("kwargs", "key", "exception", "code"),
    [
        (
            {"model": "gpt-test", "temperature": 3},
            DEV_KEY,
            openai.BadRequestError,
            "invalid_request",
        ),
        ({"model": "gpt-test"}, "wrong-key", openai.AuthenticationError, "invalid_api_key"),
        ({"model": "gpt-test"}, OTHER_KEY, openai.PermissionDeniedError, "permission_denied"),
        ({"model": "no-such-model"}, DEV_KEY, openai.NotFoundError, "model_not_found"),
    ],
)
def test_errors_map_to_sdk_exceptions(
    gateway: UvicornServer, kwargs: dict[str, Any], key: str, exception: type, code: str
) -> None:
    with pytest.raises(exception) as caught:
        client(gateway, key).chat.completions.create(messages=MESSAGES, **kwargs)
    error = caught.value
    assert isinstance(error, openai.APIStatusError)
    assert error.code == code
    assert error.response.headers["x-request-id"]


def test_upstream_failures_map_to_sdk_server_and_rate_limit_errors(
    gateway_factory: Any, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    config = base_config(openai_fake.url, anthropic_fake.url)
    server = gateway_factory(config)
    openai_fake.plan.push("status", times=2, status=500)
    with pytest.raises(openai.InternalServerError) as server_error:
        client(server).chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert server_error.value.status_code == 502
    assert server_error.value.code == "upstream_error"
    openai_fake.plan.push("status", times=2, status=429, headers={"retry-after": "30"})
    with pytest.raises(openai.RateLimitError) as limited:
        client(server).chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert limited.value.response.headers["retry-after"] == "30"
