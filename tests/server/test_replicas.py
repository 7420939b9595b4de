"""Two real gateway processes sharing one real redis-server behave as one gateway.

Traffic alternates between the replicas: a per-key limit of N per minute admits N in total, one
Idempotency-Key sent to both at once makes one upstream call, a task created on one is listed,
polled and canceled from the other, and a replica that dies mid-task has its task taken over.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import DEV_KEY, OPENAI_SECRET, wait_until
from tests.fakes import openai_upstream, replicate_upstream
from tests.fakes.faults import FaultPlan
from tests.fakes.server import serve_aiohttp
from tests.redis_server import redis_server
from tests.server.test_process import free_port

KEY_RPM = 5
CONFIG = """
[server]
host = "127.0.0.1"
shutdown_grace_s = 2

[state]
backend = "redis"
redis_url_env = "TEST_REDIS_URL"
key_prefix = "{prefix}:"
task_lease_s = 1.0

[storage]
path = "{storage}"

[tasks]
poll_initial_s = 0.01
poll_max_s = 0.05

[providers.openai]
kind = "openai"
base_url = "{openai}/v1"
api_key_env = "TEST_OPENAI_KEY"

[providers.replicate]
kind = "replicate"
base_url = "{replicate}"
api_key_env = "TEST_REPLICATE_KEY"

[models.gpt-test]
provider = "openai"
model = "upstream-gpt"

[models.musicgen]
provider = "replicate"
model = "meta/musicgen"
capabilities = ["music.text"]

[keys.dev]
key_env = "TEST_DEV_KEY"
rpm = {rpm}

[keys.unlimited]
key_env = "TEST_UNLIMITED_KEY"
"""
UNLIMITED = "unlimited-key-for-tests"
REPLICATE_SECRET = "replicate-secret-for-replicas"


@dataclass
class Cluster:
    urls: list[str]
    processes: list[subprocess.Popen[bytes]]
    openai: FaultPlan
    replicate: replicate_upstream.ReplicatePlan


def start_replica(
    config: Path, env: dict[str, str], workdir: Path
) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "--config", str(config), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
        cwd=workdir,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            if httpx.get(url + "/v1/health").status_code == 200:
                return url, process
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(process.stderr.read().decode() if process.stderr else "no start")
        time.sleep(0.05)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    openai_plan = FaultPlan()
    replicate_plan = replicate_upstream.ReplicatePlan()
    with (
        redis_server() as redis_url,
        serve_aiohttp(openai_upstream.make_app(openai_plan)) as openai_url,
        serve_aiohttp(
            replicate_upstream.make_app(replicate_plan, api_key=REPLICATE_SECRET)
        ) as replicate_url,
    ):
        config = tmp_path / "gateway.toml"
        config.write_text(
            CONFIG.format(
                prefix=tmp_path.name,
                storage=tmp_path / "artifacts",
                openai=openai_url,
                replicate=replicate_url,
                rpm=KEY_RPM,
            )
        )
        env = {
            "TEST_REDIS_URL": redis_url,
            "TEST_OPENAI_KEY": OPENAI_SECRET,
            "TEST_REPLICATE_KEY": REPLICATE_SECRET,
            "TEST_DEV_KEY": DEV_KEY,
            "TEST_UNLIMITED_KEY": UNLIMITED,
        }
        replicas = [start_replica(config, env, tmp_path) for _ in range(2)]
        cluster = Cluster(
            [url for url, _ in replicas], [p for _, p in replicas], openai_plan, replicate_plan
        )
        try:
            yield cluster
        finally:
            for process in cluster.processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in cluster.processes:
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()


def chat(url: str, key: str = DEV_KEY, **headers: str) -> httpx.Response:
    return httpx.post(
        url + "/v1/chat/completions",
        json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {key}", **headers},
        timeout=10,
    )


def test_a_key_limit_of_n_admits_n_across_both_replicas(cluster: Cluster) -> None:
    statuses = [chat(cluster.urls[n % 2]).status_code for n in range(2 * KEY_RPM)]
    assert statuses.count(200) == KEY_RPM, statuses
    assert statuses.count(429) == KEY_RPM
    assert cluster.openai.calls == KEY_RPM


def test_one_idempotency_key_at_both_replicas_makes_one_upstream_call(cluster: Cluster) -> None:
    cluster.openai.push("slow", delay=0.5)  # the first call is still running when both arrive
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(
                lambda url: chat(url, UNLIMITED, **{"idempotency-key": "same-key"}),
                cluster.urls * 2,
            )
        )
    assert [a.status_code for a in answers] == [200] * 4
    assert len({a.content for a in answers}) == 1
    assert cluster.openai.calls == 1
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 3


def auth(key: str = UNLIMITED) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_a_task_created_on_one_is_listed_polled_and_canceled_from_the_other(
    cluster: Cluster,
) -> None:
    first, second = cluster.urls
    cluster.replicate.processing_polls = 100_000
    created = httpx.post(
        first + "/v1/music/generations",
        json={"model": "musicgen", "prompt": "shared"},
        headers=auth(),
    )
    assert created.status_code == 202, created.text
    task_id = created.json()["task_id"]
    listed = httpx.get(second + "/v1/tasks", headers=auth()).json()["data"]
    assert [t["task_id"] for t in listed] == [task_id]
    wait_until(
        lambda: (
            httpx.get(f"{second}/v1/tasks/{task_id}", headers=auth()).json()["status"] == "running"
        )
    )
    canceled = httpx.post(f"{second}/v1/tasks/{task_id}/cancel", headers=auth())
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    # The replica driving the job sees the cancel and tells the provider.
    wait_until(lambda: len(cluster.replicate.cancels) == 1)
    assert httpx.get(f"{first}/v1/tasks/{task_id}", headers=auth()).json()["status"] == "canceled"
    assert len([r for r in cluster.replicate.requests if r.path.endswith("/predictions")]) <= 1


def test_a_replica_that_dies_mid_task_has_its_task_taken_over(cluster: Cluster) -> None:
    first, second = cluster.urls
    cluster.replicate.processing_polls = 100_000
    created = httpx.post(
        first + "/v1/music/generations",
        json={"model": "musicgen", "prompt": "survive"},
        headers=auth(),
    )
    task_id = created.json()["task_id"]
    wait_until(
        lambda: (
            httpx.get(f"{second}/v1/tasks/{task_id}", headers=auth()).json()["status"] == "running"
        )
    )
    # Whichever replica holds the lease dies without a word; the job must not be resubmitted.
    cluster.processes[0].kill()
    cluster.processes[0].wait(5)
    creations = sum(r.path.endswith("/predictions") for r in cluster.replicate.requests)
    cluster.replicate.processing_polls = 0
    wait_until(
        lambda: (
            httpx.get(f"{second}/v1/tasks/{task_id}", headers=auth()).json()["status"]
            == "succeeded"
        ),
        timeout=15,
    )
    assert sum(r.path.endswith("/predictions") for r in cluster.replicate.requests) == creations


def test_a_stored_response_is_read_continued_and_deleted_across_replicas(
    cluster: Cluster,
) -> None:
    first, second = cluster.urls
    created = httpx.post(
        f"{first}/v1/responses", json={"model": "gpt-test", "input": "hi"}, headers=auth()
    ).json()
    read = httpx.get(f"{second}/v1/responses/{created['id']}", headers=auth())
    assert read.status_code == 200 and read.json() == created
    follow_up = {"model": "gpt-test", "input": "again", "previous_response_id": created["id"]}
    continued = httpx.post(f"{second}/v1/responses", json=follow_up, headers=auth())
    assert continued.status_code == 200
    assert [m["role"] for m in cluster.openai.requests[-1].body["messages"]] == [
        "user",
        "assistant",
        "user",
    ]
    assert httpx.delete(f"{second}/v1/responses/{created['id']}", headers=auth()).status_code == 200
    assert httpx.get(f"{first}/v1/responses/{created['id']}", headers=auth()).status_code == 404
