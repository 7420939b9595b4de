"""The official ``openai`` Node SDK's Responses API against a real gateway on loopback.

``tests/node/responses_check.mjs`` creates a response, streams one with the SDK's stream helper,
retrieves, continues and deletes the first, and prints what it read as JSON.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.api.test_node_sdk import NODE_DIR
from tests.conftest import DEV_KEY, Upstream
from tests.fakes import anthropic_upstream, openai_upstream
from tests.fakes.server import UvicornServer


def run_script(url: str) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "openai").is_dir():
        pytest.fail("node and the locked openai Node SDK are needed: run scripts/setup --test")
    done = subprocess.run(
        [node, str(NODE_DIR / "responses_check.mjs")],
        env={"BEATRA_URL": url, "BEATRA_KEY": DEV_KEY, "PATH": str(Path(node).parent)},
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, Any] = orjson.loads(done.stdout)
    return result


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
