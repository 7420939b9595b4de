"""Access logs say what happened without secrets; answers validate against OpenAI's schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from jsonschema import Draft202012Validator

from tests.conftest import DEV_KEY, OPENAI_SECRET, CapturedLogs, Upstream, auth, wait_until
from tests.fakes.server import UvicornServer

# OpenAI's own schemas, kept with the tests (tests/reference/README.md says where from).
REFERENCE = Path(__file__).resolve().parents[1] / "reference" / "openai_chat_schemas.json"
CHAT = "/v1/chat/completions"
PROMPT = "my very private prompt text"


def validator(name: str) -> Draft202012Validator:
    schemas = json.loads(REFERENCE.read_text())["schemas"]
    return Draft202012Validator(schemas[name])


def body(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": PROMPT}], **extra}


@pytest.mark.parametrize("model", ["gpt-test", "claude-test", "local-chat"])
def test_sync_and_stream_answers_validate_against_openai_schemas(
    gateway: UvicornServer, model: str
) -> None:
    sync = httpx.post(gateway.url + CHAT, json=body(model), headers=auth()).json()
    errors = [e.message for e in validator("CreateChatCompletionResponse").iter_errors(sync)]
    assert errors == []
    stream = httpx.post(
        gateway.url + CHAT,
        json=body(model, stream=True, stream_options={"include_usage": True}),
        headers=auth(),
    )
    events = [e[6:] for e in stream.content.split(b"\n\n") if e]
    assert events[-1] == b"[DONE]"
    chunk_schema = validator("CreateChatCompletionStreamResponse")
    for event in events[:-1]:
        assert [e.message for e in chunk_schema.iter_errors(orjson.loads(event))] == []


def test_model_list_and_errors_validate_against_openai_schemas(gateway: UvicornServer) -> None:
    listed = httpx.get(gateway.url + "/v1/models", headers=auth()).json()
    assert [e.message for e in validator("ListModelsResponse").iter_errors(listed)] == []
    assert [m["id"] for m in listed["data"]] == [
        "auto",
        "gpt-test",
        "claude-test",
        "local-chat",
        "local-music",
    ]
    one = httpx.get(gateway.url + "/v1/models/claude-test", headers=auth()).json()
    assert [e.message for e in validator("Model").iter_errors(one)] == []
    assert one["capabilities"] == ["chat", "chat.stream"]
    error = httpx.get(gateway.url + "/v1/models/nope", headers=auth()).json()
    assert [e.message for e in validator("ErrorResponse").iter_errors(error)] == []


def test_a_key_sees_only_its_models(gateway: UvicornServer) -> None:
    from tests.conftest import OTHER_KEY

    listed = httpx.get(gateway.url + "/v1/models", headers=auth(OTHER_KEY)).json()
    assert [m["id"] for m in listed["data"]] == ["auto", "local-chat"]
    hidden = httpx.get(gateway.url + "/v1/models/gpt-test", headers=auth(OTHER_KEY))
    assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "model_not_found"
    assert httpx.get(gateway.url + "/v1/models").status_code == 401


def test_one_access_line_per_request_without_secrets_or_text(
    gateway: UvicornServer, openai_fake: Upstream, logs: CapturedLogs
) -> None:
    response = httpx.post(
        gateway.url + CHAT, json=body("auto"), headers={**auth(), "x-request-id": "log-me"}
    )
    assert response.status_code == 200
    httpx.post(gateway.url + CHAT, json=body("auto"), headers=auth("wrong-" + DEV_KEY))

    def access_lines() -> list[dict[str, Any]]:
        return [line for line in logs.lines() if line["event"] == "request"]

    # The line is written once the response is sent, so it may trail the client's read.
    wait_until(lambda: len(access_lines()) >= 2)
    lines = access_lines()
    assert len(lines) == 2
    ok, denied = lines
    assert ok["request_id"] == "log-me" and ok["status"] == 200 and ok["key"] == "dev"
    assert ok["model"] == "auto" and ok["model_served"] == "gpt-test"
    assert ok["provider"] == "openai" and ok["attempts"] == 1
    assert ok["route"] == CHAT and ok["prompt_tokens"] > 0 and ok["duration_ms"] > 0
    assert denied["status"] == 401 and denied["error_code"] == "invalid_api_key"
    text = logs.text()
    for secret in (DEV_KEY, OPENAI_SECRET, PROMPT, "Hello from the fake"):
        assert secret not in text


def test_upstream_credential_failure_is_logged_loudly(
    gateway: UvicornServer, openai_fake: Upstream, logs: CapturedLogs
) -> None:
    openai_fake.plan.push("status", status=401)
    httpx.post(gateway.url + CHAT, json=body("gpt-test"), headers=auth())
    loud = [line for line in logs.lines() if line["event"] == "upstream_auth_failed"]
    assert len(loud) == 1
    assert loud[0]["level"] == "error" and loud[0]["provider"] == "openai"
