"""The official ``openai`` Node SDK against a real gateway on loopback: chat, a streamed chat,
embeddings (float, and the SDK's default of base64 it decodes itself) and an error.

``tests/node/sdk_check.mjs`` makes the calls and prints what it got as JSON; the SDK comes from
``tests/node/package-lock.json`` (``scripts/setup --test`` runs ``npm ci``). The answers it read
are compared with what the gateway answers to the same requests over raw HTTP.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.api.embeddings.conftest import embed_config
from tests.conftest import DEV_KEY, GatewayFactory, Upstream, auth
from tests.fakes.openai_upstream import REPLY_WORDS

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
MESSAGES = [{"role": "user", "content": "Say hi from Node."}]


def run_node_check(url: str, script: str = "sdk_check.mjs") -> dict[str, Any]:
    """Run one of tests/node's scripts against ``url``; the JSON it prints."""
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "openai").is_dir():
        pytest.fail("node and the locked openai Node SDK are needed: run scripts/setup --test")
    done = subprocess.run(
        [node, str(NODE_DIR / script)],
        env={"BEATRA_URL": url, "BEATRA_KEY": DEV_KEY, "PATH": str(Path(node).parent)},
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, Any] = orjson.loads(done.stdout)
    return result


def test_the_node_sdk_chats_streams_embeds_and_reads_errors(
    gateway_factory: GatewayFactory, openai_fake: Upstream, openai_backup: Upstream
) -> None:
    server = gateway_factory(embed_config(openai_fake, openai_backup))
    result = run_node_check(server.url)

    assert result["chat"]["model"] == "gpt-test"
    assert result["chat"]["content"] == "".join(REPLY_WORDS)
    assert result["chat"]["usage"]["total_tokens"] > 0

    reference = httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": "local-chat", "messages": MESSAGES},
        headers=auth(),
    ).json()
    assert result["stream"]["models"] == ["local-chat"]
    assert result["stream"]["content"] == reference["choices"][0]["message"]["content"]
    assert result["stream"]["usage"] == reference["usage"]

    texts = ["the first text", "the second text"]
    vectors = httpx.post(
        server.url + "/v1/embeddings",
        json={"model": "local-embed", "input": texts},
        headers=auth(),
    ).json()
    expected = [item["embedding"] for item in vectors["data"]]
    embeddings = result["embeddings"]
    assert embeddings["model"] == "local-embed"
    assert embeddings["float"] == expected
    assert embeddings["default"] == expected  # base64 on the wire, decoded by the SDK
    assert embeddings["usage"] == vectors["usage"]

    assert result["error"] == {"status": 404, "code": "model_not_found", "type": "not_found_error"}
