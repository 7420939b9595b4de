"""Config reload on SIGHUP, against a real ``python -m gateway`` process.

Fifty streams are open on the offline ``local`` provider (``token_delay_ms`` makes each last
about a second) when the file is rewritten and the process gets SIGHUP: every stream finishes
whole, the rotated key is refused right after the reload while its replacement and a new key
work, and ``/metrics`` shows which file is live. A broken file then changes nothing, and a
restart-only change is reported rather than applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson

from tests.conftest import wait_until
from tests.server.test_process import free_port
from tests.server.test_shutdown import is_healthy

OLD_KEY = "reload-old-key"
NEW_KEY = "reload-rotated-key"
ADDED_KEY = "reload-added-key"
STREAM_KEY = "reload-stream-key"
STREAMS = 50
CONFIG = """
[server]
host = "127.0.0.1"
port = {port}
log_level = "info"

[providers.local]
kind = "local"
options = {{ token_delay_ms = 30 }}

[models.local-chat]
provider = "local"
model = "local-chat-1"

{keys}
"""


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_table(**keys: str) -> str:
    return "\n".join(f'[keys.{name}]\nsha256 = "{digest(key)}"\n' for name, key in keys.items())


def metric(url: str, line_start: str) -> float | None:
    for line in httpx.get(url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return None


def wait_for(url: str, line_start: str, value: float) -> None:
    wait_until(lambda: metric(url, line_start) == value, timeout=15)


def status(url: str, key: str) -> int:
    return httpx.get(url + "/v1/models", headers={"authorization": f"Bearer {key}"}).status_code


@contextlib.contextmanager
def running(workdir: Path, text: str) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    config = workdir / "gateway.toml"
    config.write_text(text)
    with (workdir / "out.log").open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    port = text.split("port = ", 1)[1].split("\n", 1)[0]
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: process.poll() is not None or is_healthy(url), timeout=15)
        assert process.poll() is None, (workdir / "out.log").read_text()
        yield url, process, config
    finally:
        process.kill()
        process.wait(5)


async def stream_across_reload(url: str, reload: asyncio.Event, opened: asyncio.Event) -> None:
    """Open every stream, signal once each has its first event, then read them all to the end."""
    first_events = 0
    async with httpx.AsyncClient(timeout=30) as client:

        async def one() -> str:
            nonlocal first_events
            text: list[str] = []
            async with client.stream(
                "POST",
                url + "/v1/chat/completions",
                headers={"authorization": f"Bearer {STREAM_KEY}"},
                json={
                    "model": "local-chat",
                    "stream": True,
                    "messages": [{"role": "user", "content": "Tell me a long story."}],
                },
            ) as response:
                assert response.status_code == 200
                counted = False
                async for line in response.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    if not counted:
                        counted = True
                        first_events += 1
                        if first_events == STREAMS:
                            opened.set()
                        await reload.wait()  # hold each stream open until the reload is done
                    if line == "data: [DONE]":
                        return "".join(text)
                    for choice in orjson.loads(line[6:])["choices"]:
                        text.append(choice["delta"].get("content") or "")
            raise AssertionError("a stream ended without [DONE]")

        replies = await asyncio.gather(*(one() for _ in range(STREAMS)))
    assert len(set(replies)) == 1 and len(replies[0]) > 20  # all whole and all the same


def test_a_reload_under_open_streams_rotates_keys_and_loses_none(tmp_path: Path) -> None:
    port = free_port()
    first = CONFIG.format(port=port, keys=key_table(alpha=OLD_KEY, streamer=STREAM_KEY))
    second = CONFIG.format(
        port=port, keys=key_table(alpha=NEW_KEY, streamer=STREAM_KEY, beta=ADDED_KEY)
    )
    with running(tmp_path, first) as (url, process, config):
        assert metric(url, f'beatra_config_info{{sha256="{digest(first)}"}}') == 1.0
        assert status(url, OLD_KEY) == 200 and status(url, ADDED_KEY) == 401

        async def scenario() -> None:
            reloaded, opened = asyncio.Event(), asyncio.Event()
            streams = asyncio.create_task(stream_across_reload(url, reloaded, opened))
            await asyncio.wait_for(opened.wait(), 20)
            config.write_text(second)
            process.send_signal(signal.SIGHUP)
            line = 'beatra_config_reloads_total{result="applied"}'
            await asyncio.to_thread(wait_for, url, line, 1.0)
            # The very next requests see the new key set; the streams are still open.
            assert await asyncio.to_thread(status, url, OLD_KEY) == 401
            assert await asyncio.to_thread(status, url, NEW_KEY) == 200
            assert await asyncio.to_thread(status, url, ADDED_KEY) == 200
            # ... and every stream is still open at the gateway, on the generation it began on.
            assert await asyncio.to_thread(metric, url, "beatra_open_streams ") == STREAMS
            reloaded.set()
            await asyncio.wait_for(streams, 30)

        asyncio.run(scenario())
        assert metric(url, f'beatra_config_info{{sha256="{digest(second)}"}}') == 1.0
        assert metric(url, f'beatra_config_info{{sha256="{digest(first)}"}}') is None

        # A broken file: nothing changes, and the log names where the mistake is.
        config.write_text(second.replace('model = "local-chat-1"', "model = 7"))
        process.send_signal(signal.SIGHUP)
        wait_for(url, 'beatra_config_reloads_total{result="rejected"}', 1.0)
        assert status(url, NEW_KEY) == 200 and status(url, OLD_KEY) == 401
        assert metric(url, f'beatra_config_info{{sha256="{digest(second)}"}}') == 1.0

        # A restart-only change (the port) is reported, and the listener stays where it is.
        moved = second.replace(f"port = {port}", f"port = {free_port()}")
        config.write_text(moved)
        process.send_signal(signal.SIGHUP)
        wait_for(url, 'beatra_config_reloads_total{result="applied"}', 2.0)
        assert status(url, ADDED_KEY) == 200
    logged = [orjson.loads(line) for line in (tmp_path / "out.log").read_bytes().splitlines()]
    events = {entry.get("event"): entry for entry in logged if isinstance(entry, dict)}
    rejected = events["config_reload_rejected"]
    assert rejected["at"] == "models.local-chat.model" and rejected["file"] == str(config)
    assert events["config_restart_needed"]["sections"] == ["server"]
    assert events["config_reloaded"]["sha256"] in {digest(second), digest(moved)}
