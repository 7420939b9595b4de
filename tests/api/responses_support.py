"""Helpers of the ``/v1/responses`` tests: posting, reading an event stream, SDK clients."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import orjson

from tests.conftest import DEV_KEY, auth
from tests.fakes.server import UvicornServer
from tests.openai_schemas import check_events, check_response

RESPONSES = "/v1/responses"
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


def client(server: UvicornServer, key: str = DEV_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=10)


def post(
    server: UvicornServer, body: dict[str, Any], headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.post(server.url + RESPONSES, json=body, headers={**auth(), **(headers or {})})


def answer(server: UvicornServer, body: dict[str, Any]) -> dict[str, Any]:
    """A sync answer that must be a 200 matching OpenAI's ``Response`` schema."""
    response = post(server, body)
    assert response.status_code == 200, response.text
    decoded: dict[str, Any] = response.json()
    check_response(decoded)
    return decoded


def events_of(payload: bytes) -> list[dict[str, Any]]:
    """The events of a Responses stream, each checked for its ``event:`` line and against
    OpenAI's ``ResponseStreamEvent`` schema."""
    events = []
    for block in payload.split(b"\n\n"):
        if not block:
            continue
        name, data = block.split(b"\n")
        event = orjson.loads(data.removeprefix(b"data: "))
        assert name == b"event: " + event["type"].encode()
        events.append(event)
    check_events(events)
    return events


def stream(server: UvicornServer, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = post(server, {**body, "stream": True})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return events_of(response.content)


def text_of(response: dict[str, Any]) -> str:
    return "".join(
        part["text"]
        for item in response["output"]
        if item["type"] == "message"
        for part in item["content"]
        if part["type"] == "output_text"
    )
