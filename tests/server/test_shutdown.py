"""Graceful shutdown of a real gateway process, as an orchestrator stops a replica: on SIGTERM it
stops accepting connections at once, lets an open stream finish within
``server.shutdown_grace_s``, cuts a stream that outlasts the grace, and exits.

The offline ``local`` provider's ``token_delay_ms`` makes a stream last a known time: its reply to
``PROMPT`` is ``REPLY_TOKENS`` tokens, each after that delay.
"""

from __future__ import annotations

import contextlib
import hashlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

from tests.server.test_process import free_port

KEY = "shutdown-test-key"
PROMPT = "Stream slowly, please."
REPLY_TOKENS = 34  # the local model's reply to PROMPT (checked by the first test)
CONFIG = """
[server]
host = "127.0.0.1"
port = {port}
log_level = "warning"
shutdown_grace_s = {grace}

[providers.local]
kind = "local"
options = {{ token_delay_ms = {token_delay_ms} }}

[models.local-chat]
provider = "local"
model = "local-chat-1"

[keys.test]
sha256 = "{digest}"
"""


@dataclass
class Gateway:
    process: subprocess.Popen[bytes]
    port: int
    workdir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return "".join(
            (self.workdir / name).read_text(errors="replace") for name in ("out.log", "err.log")
        )


@contextlib.contextmanager
def running_gateway(workdir: Path, grace: float, token_delay_ms: int) -> Iterator[Gateway]:
    """``python -m gateway`` on a config of its own, in its own working directory."""
    port = free_port()
    config = workdir / "gateway.toml"
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    config.write_text(
        CONFIG.format(port=port, grace=grace, token_delay_ms=token_delay_ms, digest=digest)
    )
    with (workdir / "out.log").open("wb") as out, (workdir / "err.log").open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--config", str(config)],
            stdout=out,
            stderr=err,
            cwd=workdir,
        )
    gateway = Gateway(process, port, workdir)
    try:
        deadline = time.monotonic() + 15
        while not is_healthy(gateway.url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the gateway did not start:\n{gateway.output()}")
            time.sleep(0.02)
        yield gateway
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(5)


def is_healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/v1/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def wait_until_refused(port: int, timeout: float) -> float:
    """When a new TCP connection to the port is first refused (the listener closed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                pass  # still listening: the signal has not been handled yet
        except ConnectionRefusedError:
            return time.monotonic()
        time.sleep(0.005)
    raise AssertionError(f"port {port} still accepted connections {timeout} s after SIGTERM")


def open_stream(
    client: httpx.Client, gateway: Gateway
) -> contextlib.AbstractContextManager[httpx.Response]:
    return client.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {KEY}"},
        json={
            "model": "local-chat",
            "stream": True,
            "messages": [{"role": "user", "content": PROMPT}],
        },
    )


def events(lines: Iterator[str]) -> Iterator[str]:
    return (line for line in lines if line.startswith("data: "))


@contextlib.contextmanager
def signalled_mid_stream(
    tmp_path: Path, grace: int, delay_ms: int
) -> Iterator[tuple[Gateway, str, Iterator[str], float]]:
    """A gateway with one stream open: yields it, the first event, the rest of the events, and
    when SIGTERM was sent (right after the first event arrived)."""
    with (
        running_gateway(tmp_path, grace, delay_ms) as gateway,
        httpx.Client(timeout=httpx.Timeout(5.0)) as client,
        open_stream(client, gateway) as response,
    ):
        assert response.status_code == 200
        stream = events(response.iter_lines())
        first = next(stream)
        gateway.process.send_signal(signal.SIGTERM)
        yield gateway, first, stream, time.monotonic()


def test_sigterm_drains_an_open_stream_and_refuses_new_connections(tmp_path: Path) -> None:
    grace, delay_ms = 5, 50  # the stream lasts about 34 x 50 ms = 1.7 s, well inside the grace
    with signalled_mid_stream(tmp_path, grace, delay_ms) as (gateway, first, stream, signalled):
        refused = wait_until_refused(gateway.port, timeout=2)
        assert gateway.process.poll() is None, "exited instead of draining"
        rest = list(stream)  # the rest of the reply, sent while the replica drains
        finished = time.monotonic()
        code = gateway.process.wait(grace)
        exited = time.monotonic()
        log = gateway.output()
    assert first.startswith("data: {") and rest[-1] == "data: [DONE]", log
    # Every token after the first chunk, the finish chunk, then [DONE].
    assert len(rest) == REPLY_TOKENS + 2, rest
    # The listener closed long before the stream could have ended on its own ...
    assert refused - signalled < REPLY_TOKENS * delay_ms / 1000 / 2
    # ... and the stream still ran its full length after SIGTERM.
    assert finished - signalled > REPLY_TOKENS * delay_ms / 1000 * 0.8
    assert code in (0, -signal.SIGTERM), log
    assert exited - signalled < grace, f"exited {exited - signalled:.2f} s after SIGTERM"
    assert "graceful shutdown exceeded" not in log


def test_a_stream_longer_than_the_grace_is_cut_at_the_grace(tmp_path: Path) -> None:
    grace, delay_ms = 1, 150  # the stream would last about 34 x 150 ms = 5.1 s
    with signalled_mid_stream(tmp_path, grace, delay_ms) as (gateway, first, stream, signalled):
        received = [first]
        with contextlib.suppress(httpx.TransportError):  # the cut: the body ends unfinished
            received.extend(stream)
        cut = time.monotonic() - signalled
        code = gateway.process.wait(grace + 5)
        exited = time.monotonic() - signalled
        log = gateway.output()
    assert "data: [DONE]" not in received, log
    # The cut is said in the stream, as for any failure after the first byte.
    assert '"code":"service_unavailable"' in received[-1], received[-1]
    # It was allowed to run for the grace, then cut: tokens kept coming until then, not after.
    assert grace * 0.9 < cut < grace + 1.5, f"cut {cut:.2f} s after SIGTERM"
    assert 1 + grace * 1000 / delay_ms * 0.6 < len(received) < REPLY_TOKENS, received
    assert code in (0, -signal.SIGTERM), log
    assert exited < grace + 2.5, f"exited {exited:.2f} s after SIGTERM"
    # Every line the process wrote is a JSON log line; the cut is one event, not a traceback.
    lines = [orjson.loads(line) for line in log.splitlines() if line.strip()]
    cancelled = [line for line in lines if line["event"] == "shutdown_cancelled_requests"]
    assert [line["count"] for line in cancelled] == [1], log
