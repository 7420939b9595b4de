"""The Replicate music adapter against a fake Replicate, over real HTTP (its pure translation is
test_replicate.py).
"""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from providers.base import ProviderSettings, UpstreamError
from providers.hosted.replicate_api import (
    data_url,
)
from providers.music.base import MusicJob, MusicOutput, MusicRequest, MusicStatus
from providers.music.replicate import ReplicateMusicAdapter
from tests.fakes.replicate_upstream import VERSION, ReplicatePlan, make_app, wav_bytes
from tests.fakes.server import serve_aiohttp
from tests.unit.test_replicate import KEY, T, music, reference

# ---- the adapter against the fake, over real HTTP ------------------------------------------


def against_fake(
    plan: ReplicatePlan,
    scenario: Callable[[ReplicateMusicAdapter, str], Awaitable[T]],
    *,
    api_key: str | None = KEY,
    options: Mapping[str, Any] | None = None,
) -> T:
    with serve_aiohttp(make_app(plan, api_key=KEY)) as url:
        settings = ProviderSettings(
            name="replicate", kind="replicate", base_url=url, api_key=api_key,
            options=dict(options or {}),
        )  # fmt: skip

        async def main() -> T:
            adapter = ReplicateMusicAdapter(settings)
            await adapter.start()
            try:
                return await scenario(adapter, url)
            finally:
                await adapter.close()

        return asyncio.run(main())


async def finish(adapter: ReplicateMusicAdapter, job: MusicJob) -> MusicStatus:
    for _ in range(10):
        status = await adapter.poll(job)
        if status.state in ("succeeded", "failed", "canceled"):
            return status
    raise AssertionError("the fake never finished")


async def fetch(adapter: ReplicateMusicAdapter, output: MusicOutput) -> bytes:
    return b"".join([chunk async for chunk in adapter.download(output)])


def test_generates_downloads_and_reports_each_state() -> None:
    plan = ReplicatePlan()
    plan.processing_polls = 2

    async def scenario(adapter: ReplicateMusicAdapter, url: str) -> tuple[list[str], bytes]:
        job = await adapter.submit(music(seed=3))
        states: list[str] = [(await adapter.poll(job)).state for _ in range(3)]
        final = await adapter.poll(job)
        states.append(final.state)
        return states, await fetch(adapter, final.outputs[0])

    states, audio = against_fake(plan, scenario)
    assert states == ["queued", "running", "running", "succeeded"]
    with wave.open(io.BytesIO(audio)) as parsed:
        assert parsed.getnframes() > 0
    create = plan.requests[0]
    assert create.path == "/v1/models/meta/musicgen/predictions"
    assert create.headers["authorization"] == f"Bearer {KEY}"
    assert create.body["input"]["duration"] == 8 and create.body["input"]["seed"] == 3
    assert all(r.headers.get("authorization") == f"Bearer {KEY}" for r in plan.requests)


def test_pinned_version_mp3_and_list_output() -> None:
    plan = ReplicatePlan()
    plan.starting_polls = plan.processing_polls = 0
    plan.output_as_list = True

    async def scenario(adapter: ReplicateMusicAdapter, url: str) -> tuple[MusicStatus, bytes]:
        job = await adapter.submit(music(upstream_model=f"meta/musicgen:{VERSION}", format="mp3"))
        status = await finish(adapter, job)
        return status, await fetch(adapter, status.outputs[0])

    status, audio = against_fake(plan, scenario)
    assert plan.requests[0].path == "/v1/predictions"
    assert plan.requests[0].body["version"] == VERSION
    assert status.outputs[0].content_type == "audio/mpeg" and audio.startswith(b"\xff\xfb")


def test_small_reference_is_inlined_as_a_data_url(tmp_path: Path) -> None:
    clip = tmp_path / "hum.wav"
    clip.write_bytes(wav_bytes())
    plan = ReplicatePlan()

    async def scenario(adapter: ReplicateMusicAdapter, url: str) -> MusicJob:
        return await adapter.submit(music(reference=reference(clip, "melody")))

    against_fake(plan, scenario)
    assert [r.path for r in plan.requests] == ["/v1/models/meta/musicgen/predictions"]
    sent = plan.requests[0].body["input"]
    assert sent["input_audio"] == data_url("audio/wav", clip.read_bytes())
    assert sent["continuation"] is False and sent["model_version"] == "stereo-melody-large"


def test_large_reference_is_uploaded_with_the_files_api(tmp_path: Path) -> None:
    clip = tmp_path / "intro.wav"
    clip.write_bytes(wav_bytes(seconds=0.2))
    plan = ReplicatePlan()

    async def scenario(adapter: ReplicateMusicAdapter, url: str) -> tuple[str, MusicStatus]:
        job = await adapter.submit(music(reference=reference(clip, "continuation")))
        return url, await finish(adapter, job)

    url, status = against_fake(plan, scenario, options={"inline_reference_max_bytes": 1024})
    upload, create = plan.requests[0], plan.requests[1]
    assert upload.path == "/v1/files" and upload.headers["authorization"] == f"Bearer {KEY}"
    [uploaded] = plan.uploads
    assert uploaded["name"] == "content" and uploaded["filename"] == "intro.wav"
    assert uploaded["content_type"] == "audio/wav" and uploaded["size"] == clip.stat().st_size
    assert create.body["input"]["continuation"] is True
    assert create.body["input"]["input_audio"] == f"{url}/v1/files/{uploaded['id']}"
    assert status.state == "succeeded"


def test_cancel_reaches_the_provider() -> None:
    plan = ReplicatePlan()
    plan.starting_polls = 5

    async def scenario(adapter: ReplicateMusicAdapter, url: str) -> tuple[str, MusicStatus]:
        job = await adapter.submit(music())
        await adapter.cancel(job)
        return job.job_id, await adapter.poll(job)

    job_id, status = against_fake(plan, scenario)
    assert plan.cancels == [job_id] and status.state == "canceled"
    assert plan.requests[1].path == f"/v1/predictions/{job_id}/cancel"


def test_output_on_another_host_never_sees_the_token() -> None:
    plan = ReplicatePlan()
    plan.starting_polls = plan.processing_polls = 0

    async def scenario(adapter: ReplicateMusicAdapter, url: str) -> bytes:
        plan.output_origin = url.replace("127.0.0.1", "localhost")
        status = await finish(adapter, await adapter.submit(music()))
        return await fetch(adapter, status.outputs[0])

    audio = against_fake(plan, scenario)
    assert audio.startswith(b"RIFF")
    delivery = plan.requests[-1]
    assert delivery.path.startswith("/files/") and "authorization" not in delivery.headers


def submit_error(plan: ReplicatePlan, request: MusicRequest, **kw: Any) -> UpstreamError:
    async def scenario(adapter: ReplicateMusicAdapter, url: str) -> UpstreamError:
        with pytest.raises(UpstreamError) as caught:
            await adapter.submit(request)
        return caught.value

    return against_fake(plan, scenario, **kw)


@pytest.mark.parametrize(
    ("fault", "kind", "retry_after"),
    [
        ({"status": 422, "message": "- input.prompt: Must be a string\n"}, "client_error", None),
        ({"status": 429, "headers": {"Retry-After": "2"}}, "rate_limited", 2.0),
        ({"status": 429}, "rate_limited", 1.0),
        ({"status": 500}, "server", None),
        ({"status": 503}, "server", None),
    ],
)
def test_http_faults_on_create(fault: dict[str, Any], kind: str, retry_after: float | None) -> None:
    plan = ReplicatePlan()
    plan.push("status", **fault)
    error = submit_error(plan, music())
    assert error.kind == kind and error.retry_after == retry_after
    if kind == "client_error":
        assert "input.prompt" in error.message


def test_wrong_key_schema_errors_transport_failures() -> None:
    plan = ReplicatePlan()
    assert submit_error(plan, music(), api_key="r8_wrong_token_value").kind == "auth"
    too_long = submit_error(plan, music(duration_seconds=45))
    assert too_long.kind == "client_error" and "input.duration" in too_long.message
    unknown = submit_error(plan, music(upstream_model="meta/not-musicgen"))
    assert unknown.kind == "server" and unknown.status == 404
    plan.push("reset")
    assert submit_error(plan, music()).kind == "connect"
    plan.push("malformed")
    assert submit_error(plan, music()).kind == "server"


def test_poll_errors_and_urls_on_foreign_hosts() -> None:
    plan = ReplicatePlan()

    async def scenario(adapter: ReplicateMusicAdapter, url: str) -> tuple[str, MusicStatus]:
        job = await adapter.submit(music())
        plan.push("status", status=429, headers={"Retry-After": "3"})
        with pytest.raises(UpstreamError) as caught:
            await adapter.poll(job)
        assert caught.value.kind == "rate_limited" and caught.value.retry_after == 3.0
        # A status URL on another host is not followed: the token stays on the API's host.
        job.data["get"] = "https://elsewhere.example/v1/predictions/" + job.job_id
        return job.job_id, await adapter.poll(job)

    job_id, status = against_fake(plan, scenario)
    assert status.state == "queued"
    assert plan.requests[-1].path == f"/v1/predictions/{job_id}"


def test_failed_prediction_and_expired_output() -> None:
    plan = ReplicatePlan()
    plan.starting_polls = plan.processing_polls = 0

    async def scenario(adapter: ReplicateMusicAdapter, url: str) -> tuple[MusicStatus, str]:
        plan.fail_with = "Invalid input_audio: could not decode the file"
        failed = await finish(adapter, await adapter.submit(music()))
        plan.fail_with = None
        done = await finish(adapter, await adapter.submit(music()))
        plan.expired_status = 410
        with pytest.raises(UpstreamError) as caught:
            await fetch(adapter, done.outputs[0])
        return failed, caught.value.message

    failed, expired = against_fake(plan, scenario)
    assert failed.state == "failed" and failed.error is not None
    assert failed.error.kind == "client_error" and "could not decode" in failed.error.message
    assert "expired" in expired


def test_capabilities_and_options() -> None:
    adapter = ReplicateMusicAdapter(
        ProviderSettings(name="r", kind="replicate", options={"max_duration_seconds": 12})
    )
    assert adapter.kind == "replicate" and adapter.supports_lyrics is False
    assert adapter.formats == {"wav", "mp3"}
    assert adapter.reference_modes == {"melody", "continuation"}
    assert adapter.max_duration_seconds == 12.0
    assert (
        ReplicateMusicAdapter(ProviderSettings(name="r", kind="replicate")).max_duration_seconds
        == 30.0
    )
