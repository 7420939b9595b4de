"""Music tasks over time: listing and paging, shutdown with tasks running, the job deadline, and
the published schemas of task and artifact bodies. Fixtures: this folder's conftest.py;
helpers: support.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from jsonschema import Draft202012Validator

from gateway.app import create_app
from gateway.config.settings import settings_from_dict
from gateway.contract.schemas_music import ARTIFACT, TASK, TASK_LIST
from tests.api.music.support import MusicFakes, create, finished, music_config, task_of
from tests.conftest import TEST_ENV, GatewayFactory, auth, wait_until
from tests.fakes.server import UvicornServer


def test_task_list_pages_newest_first_with_filters(
    server: UvicornServer, fakes: MusicFakes
) -> None:
    ids = [
        create(server, {"model": "stable-audio", "prompt": f"song {n}"}).json()["task_id"]
        for n in range(5)
    ]
    for task_id in ids:
        finished(server, task_id)
    seen: list[str] = []
    cursor = None
    while True:
        query = {"limit": "2", **({"after": cursor} if cursor else {})}
        page = httpx.get(f"{server.url}/v1/tasks", params=query, headers=auth()).json()
        seen += [t["task_id"] for t in page["data"]]
        assert len(page["data"]) <= 2
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert seen == list(reversed(ids))
    by_status = httpx.get(
        f"{server.url}/v1/tasks", params={"status": "succeeded"}, headers=auth()
    ).json()
    assert len(by_status["data"]) == 5
    none = httpx.get(
        f"{server.url}/v1/tasks", params={"type": "music.reference_audio"}, headers=auth()
    )
    assert none.json()["data"] == []
    bad = httpx.get(
        f"{server.url}/v1/tasks", params={"status": "done", "limit": "0"}, headers=auth()
    )
    assert bad.status_code == 400
    assert {d["field"] for d in bad.json()["error"]["details"]} == {"status", "limit"}


def test_shutdown_marks_unfinished_tasks_interrupted_and_never_resubmits(
    fakes: MusicFakes, tmp_path: Any
) -> None:
    config = music_config(fakes.urls)
    config["storage"] = {"path": str(tmp_path / "artifacts")}
    app = create_app(settings_from_dict(config, TEST_ENV))
    fakes.stability.push("slow", delay=10.0)
    fakes.replicate.processing_polls = 10_000
    with UvicornServer(app) as server:
        sync_id = create(server, {"model": "stable-audio", "prompt": "a"}).json()["task_id"]
        polled_id = create(server, {"model": "musicgen", "prompt": "b"}).json()["task_id"]
        wait_until(lambda: task_of(server, polled_id)["status"] == "running")
        wait_until(lambda: fakes.stability.calls == 1)
    for task_id in (sync_id, polled_id):
        task = asyncio.run(app.task_store.get(task_id))
        assert task is not None and task.status == "failed"
        assert task.error is not None and task.error["code"] == "service_unavailable"
        assert task.error["retryable"] is True and "not resubmitted" in task.error["message"]
    assert fakes.stability.calls == 1  # the paid job was not started again
    assert len(fakes.replicate.cancels) == 1  # the job we stopped following was canceled


def test_a_job_past_its_deadline_fails_with_upstream_timeout_and_is_canceled(
    gateway_factory: GatewayFactory, fakes: MusicFakes
) -> None:
    config = music_config(fakes.urls)
    config["tasks"]["deadline_s"] = 0.3
    server = gateway_factory(config)
    fakes.replicate.processing_polls = 10_000
    task = finished(server, create(server, {"model": "musicgen", "prompt": "x"}).json()["task_id"])
    assert task["status"] == "failed" and task["error"]["code"] == "upstream_timeout"
    wait_until(lambda: len(fakes.replicate.cancels) == 1)


def test_task_and_artifact_bodies_match_the_published_schemas(
    server: UvicornServer, fakes: MusicFakes
) -> None:
    def check(schema: dict[str, Any], value: Any) -> None:
        assert [e.message for e in Draft202012Validator(schema).iter_errors(value)] == []

    created = create(server, {"model": "stable-audio", "prompt": "x"}).json()
    check(TASK, created)
    task = finished(server, created["task_id"])
    check(TASK, task)
    check(TASK_LIST, httpx.get(f"{server.url}/v1/tasks", headers=auth()).json())
    artifact_id = task["result"]["artifacts"][0]["artifact_id"]
    check(ARTIFACT, httpx.get(f"{server.url}/v1/artifacts/{artifact_id}", headers=auth()).json())
    fakes.replicate.push("status", status=500)
    failed = finished(
        server, create(server, {"model": "musicgen", "prompt": "y"}).json()["task_id"]
    )
    check(TASK, failed)
