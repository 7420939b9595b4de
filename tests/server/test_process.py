"""The gateway as an operator runs it: the real command, the embedded default, a real process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import openai
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def default_gateway() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "BEATRA_CONFIG": ""},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            if httpx.get(url + "/v1/health").status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(process.stderr.read().decode() if process.stderr else "no start")
        time.sleep(0.05)
    yield url
    process.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal it caught.
    assert process.wait(10) in (0, -signal.SIGTERM)
    output = process.stdout.read() if process.stdout else b""
    assert b'"event":"request"' in output  # JSON access lines on stdout


def test_embedded_default_serves_the_readme_examples(default_gateway: str) -> None:
    # The README's curl example, as raw HTTP.
    response = httpx.post(
        default_gateway + "/v1/chat/completions",
        headers={"authorization": "Bearer beatra-dev-key", "content-type": "application/json"},
        content=b'{"model": "auto", "messages": '
        b'[{"role": "user", "content": "Say hi in five words."}]}',
    )
    assert response.status_code == 200
    assert response.json()["model"] == "local-chat"
    assert response.json()["choices"][0]["message"]["content"]
    # The README's OpenAI SDK example.
    sdk = openai.OpenAI(base_url=default_gateway + "/v1", api_key="beatra-dev-key")
    reply = sdk.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "Say hi in five words."}]
    )
    assert reply.choices[0].message.content
    chunks = list(
        sdk.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert httpx.get(default_gateway + "/metrics").text.count("beatra_http_requests_total{") >= 2
