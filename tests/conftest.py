"""Shared fixtures: fake upstreams on loopback and a factory for real gateway servers."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from gateway.app import create_app
from gateway.config.settings import settings_from_dict
from gateway.http.server_protocol import deadline_protocol
from gateway.logs import SINK, configure_logging
from tests.fakes import anthropic_upstream, openai_upstream
from tests.fakes.faults import FaultPlan
from tests.fakes.server import UvicornServer, serve_aiohttp

DEV_KEY = "beatra-dev-key"
OTHER_KEY = "other-tenant-key"
SECOND_KEY = "second-tenant-key"
ANTHROPIC_SECRET = "anthropic-secret-for-tests"
OPENAI_SECRET = "openai-secret-for-tests"


class Upstream:
    def __init__(self, url: str, plan: FaultPlan) -> None:
        self.url = url
        self.plan = plan


@pytest.fixture(scope="session")
def _openai_server() -> Iterator[Upstream]:
    plan = FaultPlan()
    with serve_aiohttp(openai_upstream.make_app(plan)) as url:
        yield Upstream(url, plan)


@pytest.fixture(scope="session")
def _openai_backup_server() -> Iterator[Upstream]:
    plan = FaultPlan()
    with serve_aiohttp(openai_upstream.make_app(plan)) as url:
        yield Upstream(url, plan)


@pytest.fixture(scope="session")
def _anthropic_server() -> Iterator[Upstream]:
    plan = FaultPlan()
    with serve_aiohttp(anthropic_upstream.make_app(plan, api_key=ANTHROPIC_SECRET)) as url:
        yield Upstream(url, plan)


@pytest.fixture
def openai_fake(_openai_server: Upstream) -> Iterator[Upstream]:
    _openai_server.plan.reset()
    yield _openai_server
    _openai_server.plan.reset()


@pytest.fixture
def openai_backup(_openai_backup_server: Upstream) -> Iterator[Upstream]:
    _openai_backup_server.plan.reset()
    yield _openai_backup_server
    _openai_backup_server.plan.reset()


@pytest.fixture
def anthropic_fake(_anthropic_server: Upstream) -> Iterator[Upstream]:
    _anthropic_server.plan.reset()
    yield _anthropic_server
    _anthropic_server.plan.reset()


def base_config(
    openai_url: str = "http://127.0.0.1:9", anthropic_url: str = "http://127.0.0.1:9"
) -> dict[str, Any]:
    """A configuration over the fakes: each model has one deployment, ``auto`` spans them."""
    return {
        "server": {"max_body_bytes": 64 * 1024},
        "relay": {
            "attempts_per_deployment": 2,
            "backoff_base_s": 0.001,
            "backoff_max_s": 0.01,
            "max_retry_after_s": 0.5,
            "cooldown_failures": 3,
            "cooldown_s": 30.0,
        },
        "providers": {
            "openai": {
                "kind": "openai",
                "base_url": f"{openai_url}/v1",
                "api_key_env": "TEST_OPENAI_KEY",
                "read_timeout_s": 2.0,
            },
            "anthropic": {
                "kind": "anthropic",
                "base_url": anthropic_url,
                "api_key_env": "TEST_ANTHROPIC_KEY",
                "read_timeout_s": 2.0,
            },
            "local": {"kind": "local"},
        },
        "models": {
            "gpt-test": {"provider": "openai", "model": "upstream-gpt"},
            "claude-test": {"provider": "anthropic", "model": "claude-upstream"},
            "local-chat": {"provider": "local", "model": "local-1"},
            "local-music": {
                "provider": "local",
                "model": "local-music-1",
                "capabilities": ["music.text", "music.reference_audio"],
            },
        },
        "routing": {"auto": ["gpt-test", "claude-test", "local-chat", "local-music"]},
        "tasks": {"poll_initial_s": 0.005, "poll_max_s": 0.02},
        "keys": {
            "dev": {"key_env": "TEST_DEV_KEY"},
            "limited": {"key_env": "TEST_OTHER_KEY", "models": ["local-chat"]},
            "second": {"key_env": "TEST_SECOND_KEY"},
        },
    }


TEST_ENV = {
    "TEST_OPENAI_KEY": OPENAI_SECRET,
    "TEST_ANTHROPIC_KEY": ANTHROPIC_SECRET,
    "TEST_DEV_KEY": DEV_KEY,
    "TEST_OTHER_KEY": OTHER_KEY,
    "TEST_SECOND_KEY": SECOND_KEY,
}

GatewayFactory = Callable[..., UvicornServer]


@pytest.fixture
def gateway_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayFactory]:
    """Start real gateway servers from config dicts; all are stopped after the test.

    Each server stores artifacts in a fresh temporary directory unless the config names one.
    """
    servers: list[UvicornServer] = []

    def start(config: dict[str, Any], **app_options: Any) -> UvicornServer:
        config = {**config, "storage": dict(config.get("storage", {}))}
        config["storage"].setdefault("path", str(tmp_path_factory.mktemp("artifacts")))
        settings = settings_from_dict(config, TEST_ENV)
        # The production protocol (deadlines, and the direct line for client disconnects).
        protocol = deadline_protocol(
            settings.server.header_timeout_s, settings.server.body_timeout_s
        )
        server = UvicornServer(create_app(settings, **app_options), http=protocol).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def gateway(
    gateway_factory: GatewayFactory, openai_fake: Upstream, anthropic_fake: Upstream
) -> UvicornServer:
    """A gateway over the two fakes with the base configuration."""
    return gateway_factory(base_config(openai_fake.url, anthropic_fake.url))


def auth(key: str = DEV_KEY) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


class CapturedLogs:
    """Every JSON log line the gateways in this process write, decoded."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()

    def lines(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.buffer.getvalue().splitlines() if line]

    def text(self) -> str:
        return self.buffer.getvalue().decode()


@pytest.fixture(scope="session", autouse=True)
def _json_logs_to_memory() -> Iterator[None]:
    configure_logging("info", "json")
    original = SINK.target
    SINK.target = io.BytesIO()
    yield
    SINK.target = original


@pytest.fixture
def logs() -> CapturedLogs:
    captured = CapturedLogs()
    SINK.target = captured.buffer
    return captured


class FakeClock:
    """The gateway's clock in tests: time moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll a condition that another thread will make true; fail if it does not in time."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)
