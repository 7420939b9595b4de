"""Music tasks end to end through each provider's fake: upload, create, poll, download, cancel,
failures, tenancy and Idempotency-Key.

The gateway runs under uvicorn; Replicate, fal.ai and Stability are aiohttp fakes speaking their
documented wire formats. Tasks are driven by the real task runner (polling fast in tests).
Fixtures: this folder's conftest.py; helpers: support.py.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.music.support import (
    REPLICATE_SECRET,
    MusicFakes,
    check_audio_artifact,
    create,
    finished,
    task_of,
    upload_reference,
)
from tests.conftest import SECOND_KEY, auth, wait_until
from tests.fakes.faults import FaultPlan
from tests.fakes.server import UvicornServer

REFERENCE_CASES = [
    ("musicgen", "melody", lambda f: f.replicate),
    ("stable-audio", "remix", lambda f: f.stability),
    ("fal-remix", "remix", lambda f: f.fal),
]


@pytest.mark.parametrize(("model", "mode", "plan_of"), REFERENCE_CASES)
def test_reference_audio_task_runs_to_a_downloadable_wav(
    server: UvicornServer, fakes: MusicFakes, model: str, mode: str, plan_of: Any
) -> None:
    reference = upload_reference(server)
    response = create(
        server,
        {
            "model": model,
            "prompt": "warm lo-fi piano",
            "duration_seconds": 8,
            "format": "wav",
            "reference_artifact_id": reference,
            "reference_mode": mode,
        },
    )
    assert response.status_code == 202, response.text
    created = response.json()
    assert created["status"] == "queued" and created["type"] == "music.reference_audio"
    assert created["model"] == model and created["task_id"].startswith("task_")
    task = finished(server, created["task_id"])
    check_audio_artifact(server, task)
    plan: FaultPlan = plan_of(fakes)
    assert plan.calls >= 1


def test_text_task_through_fal(server: UvicornServer, fakes: MusicFakes) -> None:
    response = create(server, {"model": "fal-text", "prompt": "rain on a tin roof"})
    assert response.status_code == 202, response.text
    check_audio_artifact(server, finished(server, response.json()["task_id"]))


@pytest.mark.parametrize("provider", ["replicate", "fal"])
def test_cancel_mid_run_reaches_the_provider(
    server: UvicornServer, fakes: MusicFakes, provider: str
) -> None:
    if provider == "replicate":
        fakes.replicate.processing_polls = 10_000
        model = "musicgen"
    else:
        fakes.fal.polls_per_state = 10_000
        model = "fal-text"
    task_id = create(server, {"model": model, "prompt": "endless drone"}).json()["task_id"]
    wait_until(lambda: task_of(server, task_id)["status"] == "running")
    response = httpx.post(f"{server.url}/v1/tasks/{task_id}/cancel", headers=auth())
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    if provider == "replicate":
        wait_until(lambda: len(fakes.replicate.cancels) == 1)
    else:
        wait_until(lambda: len(fakes.fal.cancelled) == 1)
    again = httpx.post(f"{server.url}/v1/tasks/{task_id}/cancel", headers=auth())
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "task_not_cancelable"
    assert task_of(server, task_id)["status"] == "canceled"


def test_cancel_during_a_synchronous_provider_call_hangs_up_on_it(
    server: UvicornServer, fakes: MusicFakes
) -> None:
    fakes.stability.push("slow", delay=10.0)
    task_id = create(server, {"model": "stable-audio", "prompt": "slow"}).json()["task_id"]
    wait_until(lambda: fakes.stability.calls == 1)
    assert httpx.post(f"{server.url}/v1/tasks/{task_id}/cancel", headers=auth()).status_code == 200
    wait_until(lambda: fakes.stability.abandoned_requests == 1)
    assert task_of(server, task_id)["status"] == "canceled"


@pytest.mark.parametrize(
    ("setup", "code", "retryable"),
    [
        (lambda f: f.replicate.push("status", status=401), "upstream_error", True),
        (lambda f: f.replicate.push("status", status=422), "invalid_request", False),
        (lambda f: f.replicate.push("status", status=500), "upstream_error", True),
        (lambda f: setattr(f.replicate, "fail_with", "CUDA out of memory"), "upstream_error", True),
        (lambda f: setattr(f.replicate, "expired_status", 410), "upstream_error", True),
    ],
)
def test_provider_failures_become_failed_tasks_with_the_envelope_code(
    server: UvicornServer, fakes: MusicFakes, setup: Any, code: str, retryable: bool
) -> None:
    setup(fakes)
    task_id = create(server, {"model": "musicgen", "prompt": "x"}).json()["task_id"]
    task = finished(server, task_id)
    assert task["status"] == "failed"
    assert task["error"]["code"] == code and task["error"]["retryable"] is retryable
    assert "result" not in task
    assert REPLICATE_SECRET not in str(task) and fakes.urls["replicate"] not in str(task)


def test_poll_honours_a_429_and_still_finishes(server: UvicornServer, fakes: MusicFakes) -> None:
    fakes.replicate.processing_polls = 100_000
    task_id = create(server, {"model": "musicgen", "prompt": "x"}).json()["task_id"]
    wait_until(lambda: task_of(server, task_id)["status"] == "running")
    fakes.replicate.push("status", status=429, headers={"Retry-After": "0"})
    fakes.replicate.processing_polls = 0
    check_audio_artifact(server, finished(server, task_id))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "musicgen", "prompt": "x", "lyrics": "la la"}, "lyrics"),
        ({"model": "musicgen", "prompt": "x", "format": "flac"}, "format"),
        ({"model": "musicgen", "prompt": "x", "duration_seconds": 31}, "duration_seconds"),
        ({"model": "fal-text", "prompt": "x", "reference_artifact_id": "REF"}, "model"),
        (
            {"model": "stable-audio", "prompt": "x", "reference_artifact_id": "REF"}
            | {"reference_mode": "continuation"},
            "reference_mode",
        ),
        ({"model": "musicgen", "prompt": "", "speed": 2}, "prompt"),
        ({"model": "musicgen", "prompt": "x", "instrumental": True, "lyrics": "a"}, "lyrics"),
    ],
)
def test_requests_a_model_cannot_serve_are_400_naming_the_field(
    server: UvicornServer, fakes: MusicFakes, body: dict[str, Any], field: str
) -> None:
    if body.get("reference_artifact_id") == "REF":
        body["reference_artifact_id"] = upload_reference(server)
    response = create(server, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert field in [d["field"] for d in error["details"]]
    assert fakes.replicate.calls == fakes.stability.calls == fakes.fal.calls == 0


def test_another_keys_reference_and_tasks_are_not_found(
    server: UvicornServer, fakes: MusicFakes
) -> None:
    theirs = upload_reference(server, SECOND_KEY)
    response = create(
        server, {"model": "stable-audio", "prompt": "x", "reference_artifact_id": theirs}
    )
    assert response.status_code == 404
    assert response.json()["error"]["details"][0]["field"] == "reference_artifact_id"
    task_id = create(server, {"model": "stable-audio", "prompt": "mine"}).json()["task_id"]
    other = auth(SECOND_KEY)
    assert httpx.get(f"{server.url}/v1/tasks/{task_id}", headers=other).status_code == 404
    cancel = httpx.post(f"{server.url}/v1/tasks/{task_id}/cancel", headers=other)
    assert cancel.status_code == 404
    assert httpx.get(f"{server.url}/v1/tasks", headers=other).json()["data"] == []
    task = finished(server, task_id)
    artifact_id = task["result"]["artifacts"][0]["artifact_id"]
    url = f"{server.url}/v1/artifacts/{artifact_id}/content"
    assert httpx.get(url, headers=other).status_code == 404


def test_same_idempotency_key_makes_one_job(server: UvicornServer, fakes: MusicFakes) -> None:
    body = {"model": "stable-audio", "prompt": "once"}
    first = create(server, body, **{"idempotency-key": "song-1"})
    again = create(server, body, **{"idempotency-key": "song-1"})
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    finished(server, first.json()["task_id"])
    assert fakes.stability.calls == 1
    conflict = create(server, {**body, "prompt": "twice"}, **{"idempotency-key": "song-1"})
    assert conflict.status_code == 409
