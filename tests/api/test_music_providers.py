"""Music tasks end to end through each provider's fake: upload, create, poll, download, cancel.

The gateway runs under uvicorn; Replicate, fal.ai and Stability are aiohttp fakes speaking their
documented wire formats. Tasks are driven by the real task runner (polling fast in tests).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from gateway.app import create_app
from gateway.config.settings import settings_from_dict
from gateway.contract.schemas_music import ARTIFACT, TASK, TASK_LIST
from providers.synth.wav import describe_wav, encode_wav
from tests.conftest import SECOND_KEY, TEST_ENV, GatewayFactory, auth, base_config, wait_until
from tests.fakes import fal_upstream, replicate_upstream, stability_upstream
from tests.fakes.faults import FaultPlan
from tests.fakes.server import UvicornServer, serve_aiohttp

REPLICATE_SECRET = "replicate-secret-for-tests"
FAL_SECRET = "fal-secret-for-tests"
STABILITY_SECRET = "stability-secret-for-tests"
TEST_ENV.update(
    {
        "TEST_REPLICATE_KEY": REPLICATE_SECRET,
        "TEST_FAL_KEY": FAL_SECRET,
        "TEST_STABILITY_KEY": STABILITY_SECRET,
    }
)
MUSIC = "/v1/music/generations"


@dataclass
class MusicFakes:
    replicate: replicate_upstream.ReplicatePlan
    fal: fal_upstream.FalPlan
    stability: stability_upstream.StabilityFaultPlan
    urls: dict[str, str]

    def reset(self) -> None:
        for plan in (self.replicate, self.fal, self.stability):
            plan.reset()


@pytest.fixture(scope="module")
def _music_fakes() -> Iterator[MusicFakes]:
    replicate = replicate_upstream.ReplicatePlan()
    fal = fal_upstream.FalPlan()
    stability = stability_upstream.StabilityFaultPlan()
    with (
        serve_aiohttp(replicate_upstream.make_app(replicate, api_key=REPLICATE_SECRET)) as r_url,
        serve_aiohttp(fal_upstream.make_app(fal, api_key=FAL_SECRET)) as f_url,
        serve_aiohttp(stability_upstream.make_app(stability, api_key=STABILITY_SECRET)) as s_url,
    ):
        yield MusicFakes(
            replicate, fal, stability, {"replicate": r_url, "fal": f_url, "stability": s_url}
        )


@pytest.fixture
def fakes(_music_fakes: MusicFakes) -> Iterator[MusicFakes]:
    _music_fakes.reset()
    yield _music_fakes
    _music_fakes.reset()


def music_config(urls: dict[str, str]) -> dict[str, Any]:
    config = base_config()
    config["providers"].update(
        {
            "replicate": {
                "kind": "replicate",
                "base_url": urls["replicate"],
                "api_key_env": "TEST_REPLICATE_KEY",
            },
            "fal": {"kind": "fal", "base_url": urls["fal"], "api_key_env": "TEST_FAL_KEY"},
            "stability": {
                "kind": "stability",
                "base_url": urls["stability"],
                "api_key_env": "TEST_STABILITY_KEY",
            },
        }
    )
    both = ["music.text", "music.reference_audio"]
    config["models"].update(
        {
            "musicgen": {"provider": "replicate", "model": "meta/musicgen", "capabilities": both},
            "fal-remix": {
                "provider": "fal",
                "model": "fal-ai/ace-step/audio-to-audio",
                "capabilities": ["music.reference_audio"],
            },
            "fal-text": {
                "provider": "fal",
                "model": "fal-ai/stable-audio",
                "capabilities": ["music.text"],
            },
            "stable-audio": {
                "provider": "stability",
                "model": "stable-audio-2",
                "capabilities": both,
            },
        }
    )
    config["tasks"] = {"poll_initial_s": 0.005, "poll_max_s": 0.02, "deadline_s": 20}
    return config


@pytest.fixture
def server(gateway_factory: GatewayFactory, fakes: MusicFakes) -> UvicornServer:
    return gateway_factory(music_config(fakes.urls))


def reference_wav() -> bytes:
    rate = 8000
    return encode_wav(
        (int(9000 * math.sin(2 * math.pi * 330 * i / rate)) for i in range(rate)), rate
    )


def upload_reference(server: UvicornServer, key: str | None = None) -> str:
    response = httpx.post(
        server.url + "/v1/uploads",
        files={"file": ("ref.wav", reference_wav(), "audio/wav")},
        headers=auth(key) if key else auth(),
    )
    assert response.status_code == 200, response.text
    return str(response.json()["artifact_id"])


def create(server: UvicornServer, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(server.url + MUSIC, json=body, headers={**auth(), **headers}, timeout=10)


def task_of(server: UvicornServer, task_id: str, key: str | None = None) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/v1/tasks/{task_id}", headers=auth(key) if key else auth())
    assert response.status_code == 200, response.text
    return dict(response.json())


def finished(server: UvicornServer, task_id: str) -> dict[str, Any]:
    wait_until(
        lambda: task_of(server, task_id)["status"] in ("succeeded", "failed", "canceled"),
        timeout=15,
    )
    return task_of(server, task_id)


def check_audio_artifact(server: UvicornServer, task: dict[str, Any]) -> None:
    assert task["status"] == "succeeded", task
    (artifact,) = task["result"]["artifacts"]
    assert artifact["content_type"] == "audio/wav"
    content = httpx.get(
        f"{server.url}/v1/artifacts/{artifact['artifact_id']}/content", headers=auth()
    )
    assert content.status_code == 200 and len(content.content) == artifact["bytes"]
    info = describe_wav(content.content)
    assert info.frames > 0 and info.sample_rate > 0


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
