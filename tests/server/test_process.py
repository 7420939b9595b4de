"""The gateway as an operator runs it: the real command, the embedded default, a real process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from providers.synth.wav import describe_wav


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Running(str):
    """The gateway's base URL, with its process and working directory."""

    process: subprocess.Popen[bytes]
    workdir: Path


@pytest.fixture
def default_gateway(tmp_path: Path) -> Iterator[Running]:
    port = free_port()
    # Its own working directory: the default config keeps artifacts under ./data/artifacts.
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "BEATRA_CONFIG": ""},
        cwd=tmp_path,
    )
    url = Running(f"http://127.0.0.1:{port}")
    url.process = process
    url.workdir = tmp_path
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


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_upload_of_100_mb_plus_one_byte_is_refused_without_buffering_it(
    default_gateway: Running,
) -> None:
    """The default 100 MB limit: one byte more is 413, streamed through, nothing kept."""
    limit = 100 * 1024 * 1024
    boundary = "limit-test"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    wav_header = b"RIFF\xff\xff\xff\xffWAVEfmt " + bytes(32)
    tail = f"\r\n--{boundary}--\r\n".encode()
    block = bytes(1024 * 1024)

    def body() -> Iterator[bytes]:
        yield head + wav_header
        left = limit + 1 - len(wav_header)
        while left > 0:
            yield block[: min(len(block), left)]
            left -= len(block)
        yield tail

    before = peak_rss_mb(default_gateway.process.pid)
    response = httpx.post(
        default_gateway + "/v1/uploads",
        content=body(),
        headers={
            "authorization": "Bearer beatra-dev-key",
            "content-type": f"multipart/form-data; boundary={boundary}",
        },
        timeout=60,
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    peak = peak_rss_mb(default_gateway.process.pid)
    assert peak - before < 30, (before, peak)  # streamed: far below the 100 MB it received
    storage = default_gateway.workdir / "data" / "artifacts"
    assert list(storage.iterdir()) == []


def test_readme_song_quickstart_renders_real_audio(default_gateway: Running) -> None:
    """The README's music example on the embedded default: a real, non-silent WAV."""
    headers = {"authorization": "Bearer beatra-dev-key"}
    created = httpx.post(
        default_gateway + "/v1/music/generations",
        headers={**headers, "idempotency-key": "readme-song"},
        json={
            "model": "auto",
            "prompt": "calm piano ballad in a minor key",
            "duration_seconds": 12,
        },
    )
    assert created.status_code == 202, created.text
    task_id = created.json()["task_id"]
    deadline = time.monotonic() + 20
    while (task := httpx.get(f"{default_gateway}/v1/tasks/{task_id}", headers=headers).json())[
        "status"
    ] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert task["status"] == "succeeded" and task["model"] == "local-music"
    (artifact,) = task["result"]["artifacts"]
    wav = httpx.get(
        f"{default_gateway}/v1/artifacts/{artifact['artifact_id']}/content", headers=headers
    ).content
    info = describe_wav(wav)
    assert info.sample_rate >= 22050 and abs(info.duration_seconds - 12) < 0.01
    assert info.rms > 0.02  # not silent
    reference = httpx.post(
        default_gateway + "/v1/uploads", headers=headers, files={"file": ("song.wav", wav)}
    ).json()["artifact_id"]
    remix = httpx.post(
        default_gateway + "/v1/music/generations",
        headers=headers,
        json={
            "model": "local-music",
            "prompt": "upbeat synth",
            "reference_artifact_id": reference,
            "reference_mode": "continuation",
        },
    )
    assert remix.status_code == 202 and remix.json()["type"] == "music.reference_audio"
