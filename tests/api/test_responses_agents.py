"""The official OpenAI Agents SDK runs a tool-using agent through ``/v1/responses``.

One agent with one function tool, on the OpenAI-compatible fake and on the Anthropic fake: the
model calls the tool, the SDK runs it and sends its result back, the model answers; then a second
user turn on the same conversation, sent whole or chained by ``previous_response_id``.
``Runner.run`` and ``Runner.run_streamed`` alike. Every request the SDK sends and every answer
and event it receives is recorded on the wire and held to OpenAI's schemas.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2  # the HTTP client of the openai SDK (its fork of httpx)
import openai
import orjson
import pytest
from agents import (
    Agent,
    OpenAIResponsesModel,
    Runner,
    RunResult,
    RunResultStreaming,
    function_tool,
    set_tracing_disabled,
)

from tests.api.responses_support import events_of
from tests.conftest import DEV_KEY, Upstream
from tests.fakes import anthropic_upstream, openai_upstream
from tests.fakes.server import UvicornServer
from tests.openai_schemas import check, check_response

set_tracing_disabled(True)  # the SDK would otherwise send traces to OpenAI

REPLIES = {
    "gpt-test": "".join(openai_upstream.REPLY_WORDS),
    "claude-test": "".join(anthropic_upstream.REPLY_WORDS),
}
STREAMED_REPLIES = {
    "gpt-test": "".join(openai_upstream.REPLY_WORDS[:5]),
    "claude-test": "".join(anthropic_upstream.REPLY_WORDS[:5]),
}


class Recorder(httpx2.AsyncBaseTransport):
    """A real HTTP transport that keeps each answer's body (read whole, then handed on)."""

    def __init__(self) -> None:
        self._inner = httpx2.AsyncHTTPTransport()
        self.answers: list[tuple[str, bytes]] = []
        self.requests: list[dict[str, Any]] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(orjson.loads(request.content))
        response = await self._inner.handle_async_request(request)
        body = await response.aread()
        self.answers.append((response.headers.get("content-type", ""), body))
        return httpx2.Response(response.status_code, headers=response.headers, content=body)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def check(self) -> None:
        """Every request the SDK sent is a ``CreateResponse``; every answer a ``Response`` or
        a stream of valid events."""
        for sent in self.requests:
            check("CreateResponse", sent)
        for content_type, body in self.answers:
            if content_type.startswith("text/event-stream"):
                assert events_of(body)[-1]["type"] == "response.completed"
            else:
                check_response(orjson.loads(body))


calls: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    calls.append(city)
    return f"Sunny in {city}"


async def run_agent(
    server: UvicornServer, model: str, *, streamed: bool, chained: bool = False
) -> tuple[list[RunResult | RunResultStreaming], Recorder]:
    """Two user turns; ``chained``: the SDK sends only new items, naming the previous response
    (``auto_previous_response_id``), and the gateway puts the stored conversation first."""
    recorder = Recorder()
    http = httpx2.AsyncClient(transport=recorder, timeout=10)
    client = openai.AsyncOpenAI(
        base_url=f"{server.url}/v1", api_key=DEV_KEY, max_retries=0, http_client=http
    )
    agent = Agent(
        name="weather",
        instructions="Answer weather questions with the tool.",
        tools=[get_weather],
        model=OpenAIResponsesModel(model=model, openai_client=client),
    )
    results: list[RunResult | RunResultStreaming] = []
    conversation: Any = "What is the weather in Paris?"
    for follow_up in ("And tomorrow?", None):
        result: RunResult | RunResultStreaming
        previous = results[-1].last_response_id if chained and results else None
        if streamed:
            result = Runner.run_streamed(
                agent,
                conversation,
                previous_response_id=previous,
                auto_previous_response_id=chained,
            )
            async for _ in result.stream_events():
                pass
        else:
            result = await Runner.run(
                agent,
                conversation,
                previous_response_id=previous,
                auto_previous_response_id=chained,
            )
        results.append(result)
        if follow_up is not None:
            history = [] if chained else result.to_input_list()
            conversation = [*history, {"role": "user", "content": follow_up}]
    await http.aclose()
    return results, recorder


@pytest.mark.parametrize("streamed", [False, True], ids=["run", "run_streamed"])
@pytest.mark.parametrize("model", ["gpt-test", "claude-test"])
def test_an_agent_calls_its_tool_and_answers_over_two_turns(
    gateway: UvicornServer,
    openai_fake: Upstream,
    anthropic_fake: Upstream,
    model: str,
    streamed: bool,
) -> None:
    calls.clear()
    (first, second), recorder = asyncio.run(run_agent(gateway, model, streamed=streamed))
    reply = (STREAMED_REPLIES if streamed else REPLIES)[model]
    assert first.final_output == reply and second.final_output == reply
    assert calls == ["Paris"]  # the first turn called the tool; the second had its result
    recorder.check()
    # Turn one: tool call, then the answer to its result; turn two: one answer.
    assert len(recorder.answers) == 3
    assert all(
        r["model"] == model and r.get("stream", False) is streamed for r in recorder.requests
    )
    upstream = (openai_fake if model == "gpt-test" else anthropic_fake).plan.requests
    assert len(upstream) == 3
    if model == "gpt-test":
        sent = upstream[1].body["messages"]
        assert sent[0] == {"role": "system", "content": "Answer weather questions with the tool."}
        assert sent[2]["tool_calls"][0]["function"]["name"] == "get_weather"
        assert sent[3] == {
            "role": "tool",
            "tool_call_id": openai_upstream.TOOL_CALL_ID,
            "content": "Sunny in Paris",
        }
        assert upstream[2].body["messages"][-1] == {"role": "user", "content": "And tomorrow?"}
    else:
        result = upstream[1].body["messages"][-1]["content"][0]
        assert result["type"] == "tool_result" and result["content"] == "Sunny in Paris"
        assert result["tool_use_id"] == anthropic_upstream.TOOL_USE_ID


@pytest.mark.parametrize("streamed", [False, True], ids=["run", "run_streamed"])
def test_an_agent_chains_turns_by_previous_response_id(
    gateway: UvicornServer, openai_fake: Upstream, streamed: bool
) -> None:
    calls.clear()
    (first, second), recorder = asyncio.run(
        run_agent(gateway, "gpt-test", streamed=streamed, chained=True)
    )
    reply = (STREAMED_REPLIES if streamed else REPLIES)["gpt-test"]
    assert first.final_output == reply and second.final_output == reply
    assert calls == ["Paris"]
    recorder.check()
    sent = recorder.requests
    assert "previous_response_id" not in sent[0]
    assert [len(r["input"]) for r in sent[1:]] == [1, 1]  # only the new item each time
    assert sent[1]["input"][0]["type"] == "function_call_output"
    # ...yet the provider saw the whole conversation every time.
    roles = [m["role"] for m in openai_fake.plan.requests[2].body["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user"]
