"""What a reload does to connection pools, against a real uvicorn over the provider fakes.

A provider whose settings did not change keeps its adapter (and so its pool) across a reload; a
provider whose settings changed gets a new adapter, and the old one is closed only after the
last request that started on it has finished: a request in flight when the file changes is
answered by the old generation, the next one by the new.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx

from gateway.app import create_app
from gateway.config.settings import parse_settings
from gateway.http.server_protocol import deadline_protocol
from gateway.reload import ConfigSource
from tests.conftest import DEV_KEY, SECOND_KEY, TEST_ENV, Upstream, auth
from tests.fakes.server import UvicornServer

CONFIG = """
[providers.openai]
kind = "openai"
base_url = "{openai}/v1"
api_key_env = "TEST_OPENAI_KEY"

[providers.anthropic]
kind = "anthropic"
base_url = "{anthropic}"
api_key_env = "TEST_ANTHROPIC_KEY"
read_timeout_s = {anthropic_read_timeout}

[models.gpt-test]
provider = "openai"
model = "upstream-gpt"

[models.claude-test]
provider = "anthropic"
model = "claude-upstream"

{more_models}
[storage]
path = "{storage}"

[keys.dev]
key_env = "TEST_DEV_KEY"
{more_keys}
"""


def chat(url: str, model: str, key: str = DEV_KEY) -> httpx.Response:
    return httpx.post(
        url + "/v1/chat/completions",
        headers=auth(key),
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )


def models(url: str) -> list[str]:
    answer = httpx.get(url + "/v1/models", headers=auth(), timeout=10).json()
    return [model["id"] for model in answer["data"]]


def test_a_changed_provider_gets_a_new_pool_and_the_old_closes_after_its_last_request(
    tmp_path: Path, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    values: dict[str, Any] = {
        "openai": openai_fake.url,
        "anthropic": anthropic_fake.url,
        "anthropic_read_timeout": 5.0,
        "storage": tmp_path / "artifacts",
        "more_keys": "",
        "more_models": "",
    }
    config = tmp_path / "gateway.toml"
    config.write_text(CONFIG.format(**values))
    source = ConfigSource(config, env=TEST_ENV)
    settings, sha256 = source.load()
    protocol = deadline_protocol(settings.server.header_timeout_s, settings.server.body_timeout_s)
    app = create_app(settings, source=source, sha256=sha256)
    server = UvicornServer(app, http=protocol).start()
    try:
        first = chat(server.url, "gpt-test")
        assert first.status_code == 200, first.text
        kept, replaced = app.adapters["openai"], app.adapters["anthropic"]
        closed: list[float] = []
        close = replaced.close

        async def recording_close() -> None:
            closed.append(time.monotonic())
            await close()

        replaced.close = recording_close  # type: ignore[method-assign]

        # A request on the old anthropic adapter is in flight when the file changes.
        anthropic_fake.plan.push("slow", delay=30)  # held until the test releases it
        answers: list[httpx.Response] = []
        in_flight = threading.Thread(target=lambda: answers.append(chat(server.url, "claude-test")))
        in_flight.start()
        deadline = time.monotonic() + 5
        while not anthropic_fake.plan.requests:
            assert time.monotonic() < deadline
            time.sleep(0.005)

        values["anthropic_read_timeout"] = 6.0
        values["more_keys"] = '[keys.second]\nkey_env = "TEST_SECOND_KEY"\n'
        values["more_models"] = '[models.gpt-extra]\nprovider = "openai"\nmodel = "upstream-x"\n'
        assert "gpt-extra" not in models(server.url)
        config.write_text(CONFIG.format(**values))
        assert server.await_in_loop(app.reloader.reload()) is True
        assert app.adapters["openai"] is kept
        assert app.adapters["anthropic"] is not replaced
        assert chat(server.url, "gpt-test", SECOND_KEY).status_code == 200  # the new key set
        assert "gpt-extra" in models(server.url)  # the new catalog, and its documents
        assert "gpt-extra" in httpx.get(server.url + "/openapi.json").text
        assert not closed  # the old adapter still serves its request

        anthropic_fake.plan.release_slow.set()
        in_flight.join(10)
        assert answers[0].status_code == 200  # finished on the generation it started on
        deadline = time.monotonic() + 5
        while not closed:
            assert time.monotonic() < deadline, "the replaced adapter was never closed"
            time.sleep(0.005)
        assert chat(server.url, "claude-test").status_code == 200  # through the new adapter
        assert len(anthropic_fake.plan.requests) == 2
    finally:
        server.stop()


def test_a_reload_with_no_source_or_a_broken_file_keeps_the_running_config(
    tmp_path: Path, openai_fake: Upstream, anthropic_fake: Upstream
) -> None:
    text = CONFIG.format(
        openai=openai_fake.url,
        anthropic=anthropic_fake.url,
        anthropic_read_timeout=2.0,
        storage=tmp_path / "artifacts",
        more_keys="",
        more_models="",
    )
    config = tmp_path / "gateway.toml"
    config.write_text(text)
    unsourced = UvicornServer(create_app(parse_settings(text, TEST_ENV))).start()
    try:
        assert unsourced.await_in_loop(unsourced.app.reloader.reload()) is False
    finally:
        unsourced.stop()
    app = create_app(parse_settings(text, TEST_ENV), source=ConfigSource(config, env=TEST_ENV))
    server = UvicornServer(app).start()
    try:
        generation = app.generation
        config.write_text(text.replace('provider = "anthropic"', 'provider = "nowhere"'))
        assert server.await_in_loop(app.reloader.reload()) is False
        config.unlink()
        assert server.await_in_loop(app.reloader.reload()) is False
        assert app.generation is generation
        assert chat(server.url, "claude-test").status_code == 200
        metrics = httpx.get(server.url + "/metrics").text
        assert 'beatra_config_reloads_total{result="rejected"} 2.0' in metrics
    finally:
        server.stop()
