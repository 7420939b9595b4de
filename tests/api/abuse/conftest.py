"""The hostile-client tests' fixtures: one real server per module, its storage, a task."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.abuse.support import MUSIC, MUSIC_BODY, abuse_config, serve
from tests.conftest import auth, wait_until
from tests.fakes.server import UvicornServer


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("abuse") / "artifacts"


@pytest.fixture(scope="module")
def server(storage: Path) -> Iterator[UvicornServer]:
    running = serve(abuse_config(storage))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def dev_task(server: UvicornServer) -> dict[str, Any]:
    """A finished music task of the dev key, with its generated artifact."""
    created = httpx.post(server.url + MUSIC, json=MUSIC_BODY, headers=auth(), timeout=10)
    url = f"{server.url}/v1/tasks/{created.json()['task_id']}"
    wait_until(lambda: httpx.get(url, headers=auth()).json()["status"] == "succeeded")
    task: dict[str, Any] = httpx.get(url, headers=auth()).json()
    return task
