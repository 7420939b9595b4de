"""The official ``openai`` Node SDK's Responses API against a real gateway on loopback.

``tests/node/responses_check.mjs`` creates a response, streams one with the SDK's stream helper,
retrieves, continues and deletes the first, and prints what it read as JSON.
"""

from __future__ import annotations

from typing import Any

from tests.api.test_node_sdk import run_node_check
from tests.conftest import Upstream
from tests.fakes import anthropic_upstream, openai_upstream
from tests.fakes.server import UvicornServer


def run_script(url: str) -> dict[str, Any]:
    return run_node_check(url, "responses_check.mjs")


def test_the_node_sdk_creates_streams_retrieves_continues_and_deletes(
    gateway: UvicornServer, openai_fake: Upstream
) -> None:
    result = run_script(gateway.url)
    reply = "".join(openai_upstream.REPLY_WORDS)
    created = result["created"]
    assert created["model"] == "gpt-test" and created["text"] == reply
    streamed = result["streamed"]
    assert streamed["kinds"][0] == "response.created"
    assert streamed["kinds"][-1] == "response.completed"
    assert streamed["model"] == "claude-test"
    assert streamed["text"] == "".join(anthropic_upstream.REPLY_WORDS[:5])
    assert result["retrieved"] == {"id": created["id"], "text": reply}
    assert result["continued"] == {"previous": created["id"], "text": reply}
    # The continued turn: the stored conversation first (its instructions are not carried).
    roles = [m["role"] for m in openai_fake.plan.requests[-1].body["messages"]]
    assert roles == ["user", "assistant", "user"]
    assert result["gone"] == {"status": 404, "code": "not_found"}
