"""Shared by the music task tests: the fakes of Replicate, fal.ai and Stability, the gateway
config over them, and helpers to upload, create, poll and check a task."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import httpx

from providers.synth.wav import describe_wav, encode_wav
from tests.conftest import TEST_ENV, auth, base_config, wait_until
from tests.fakes import fal_upstream, replicate_upstream, stability_upstream
from tests.fakes.server import UvicornServer

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
