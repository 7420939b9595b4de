"""Stored responses: `store`, `previous_response_id`, GET and DELETE `/v1/responses/{id}`."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.api.responses_support import (
    RESPONSES,
    WEATHER_TOOL,
    answer,
    client,
    post,
    stream,
    text_of,
)
from tests.conftest import SECOND_KEY, Upstream, auth
from tests.fakes import openai_upstream
from tests.fakes.server import UvicornServer
from tests.openai_schemas import check_response

REPLY = "".join(openai_upstream.REPLY_WORDS)


def get(server: UvicornServer, response_id: str, key: str | None = None) -> httpx.Response:
    headers = auth(key) if key else auth()
    return httpx.get(f"{server.url}{RESPONSES}/{response_id}", headers=headers)


def test_a_response_is_stored_by_default_and_read_back(gateway: UvicornServer) -> None:
    created = post(gateway, {"model": "gpt-test", "input": "hi", "metadata": {"k": "v"}})
    response = created.json()
    assert response["store"] is True
    read = get(gateway, response["id"])
    assert read.status_code == 200 and read.json() == response
    check_response(read.json())
    sdk = client(gateway).responses.retrieve(response["id"])
    assert sdk.id == response["id"] and sdk.output_text == REPLY and sdk.metadata == {"k": "v"}


def test_store_false_keeps_nothing(gateway: UvicornServer) -> None:
    response = answer(gateway, {"model": "gpt-test", "input": "hi", "store": False})
    assert response["store"] is False
    missing = get(gateway, response["id"])
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_a_streamed_response_is_stored_as_it_completed(gateway: UvicornServer) -> None:
    events = stream(gateway, {"model": "claude-test", "input": "hi"})
    final = events[-1]["response"]
    assert get(gateway, final["id"]).json() == final


def test_only_the_owner_reads_deletes_or_continues_a_response(gateway: UvicornServer) -> None:
    response_id = answer(gateway, {"model": "gpt-test", "input": "hi"})["id"]
    assert get(gateway, response_id, SECOND_KEY).status_code == 404
    url = f"{gateway.url}{RESPONSES}/{response_id}"
    assert httpx.delete(url, headers=auth(SECOND_KEY)).status_code == 404
    other = post(
        gateway,
        {"model": "gpt-test", "input": "more", "previous_response_id": response_id},
        auth(SECOND_KEY),
    )
    assert other.status_code == 404 and other.json()["error"]["param"] == "previous_response_id"
    deleted = httpx.delete(url, headers=auth())
    assert deleted.status_code == 200
    assert deleted.json() == {"id": response_id, "object": "response", "deleted": True}
    assert get(gateway, response_id).status_code == 404
    assert httpx.delete(url, headers=auth()).status_code == 404
    assert get(gateway, "resp_not-an-id").status_code == 404


def test_the_sdk_deletes_a_response(gateway: UvicornServer) -> None:
    sdk = client(gateway)
    created = sdk.responses.create(model="local-chat", input="hi")
    sdk.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(created.id)


def test_previous_response_id_puts_the_stored_conversation_first(
    gateway: UvicornServer, openai_fake: Upstream
) -> None:
    first = answer(
        gateway, {"model": "gpt-test", "input": "My name is Ana.", "instructions": "Be kind."}
    )
    second = answer(
        gateway,
        {
            "model": "gpt-test",
            "input": "What is my name?",
            "instructions": "Be brief.",
            "previous_response_id": first["id"],
        },
    )
    assert second["previous_response_id"] == first["id"]
    # The earlier turn's instructions are not carried over, as in OpenAI's API.
    assert openai_fake.plan.requests[1].body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "My name is Ana."},
        {"role": "assistant", "content": REPLY},
        {"role": "user", "content": "What is my name?"},
    ]
    third = answer(
        gateway, {"model": "gpt-test", "input": "Thanks.", "previous_response_id": second["id"]}
    )
    assert [m["role"] for m in openai_fake.plan.requests[2].body["messages"]] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert text_of(third) == REPLY
    unknown = post(gateway, {"model": "gpt-test", "input": "x", "previous_response_id": "resp_x"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("model", ["gpt-test", "claude-test"])
def test_a_tool_result_continues_the_stored_tool_call(
    gateway: UvicornServer, model: str, openai_fake: Upstream
) -> None:
    first = answer(gateway, {"model": model, "input": "Weather?", "tools": [WEATHER_TOOL]})
    (call,) = first["output"]
    result = {"type": "function_call_output", "call_id": call["call_id"], "output": "Sunny"}
    second = answer(
        gateway,
        {
            "model": model,
            "input": [result],
            "tools": [WEATHER_TOOL],
            "previous_response_id": first["id"],
        },
    )
    assert text_of(second) and second["output"][0]["type"] == "message"
    if model == "gpt-test":
        sent = openai_fake.plan.requests[1].body["messages"]
        assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
        assert sent[1]["tool_calls"][0]["id"] == call["call_id"]
