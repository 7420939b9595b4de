"""The fal.ai music adapter against a fake fal queue (its pure translation is test_fal.py)."""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from providers.base import ProviderSettings, UpstreamError
from providers.hosted.fal_api import (
    data_uri,
)
from providers.music.base import MusicJob, MusicOutput, MusicRequest, MusicStatus
from providers.music.fal import (
    FalMusicAdapter,
)
from tests.fakes.fal_upstream import WAV, FalPlan, make_app
from tests.fakes.server import serve_aiohttp
from tests.unit.test_fal import KEY, T, music, reference

# ---- the adapter against the fake fal queue ------------------------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[str, FalPlan]]:
    plan = FalPlan()
    with serve_aiohttp(make_app(plan, api_key=KEY)) as url:
        yield url, plan


@pytest.fixture
def upstream(fake: tuple[str, FalPlan]) -> tuple[str, FalPlan]:
    fake[1].reset()
    return fake


def adapter_for(url: str, key: str = KEY, **options: Any) -> FalMusicAdapter:
    settings = ProviderSettings(name="fal", kind="fal", base_url=url, api_key=key, options=options)
    return FalMusicAdapter(settings)


async def run_job(adapter: FalMusicAdapter, request: MusicRequest) -> list[MusicStatus]:
    job = await adapter.submit(request)
    states = [await adapter.poll(job)]
    while states[-1].state in ("queued", "running"):
        states.append(await adapter.poll(job))
    return states


async def collect(adapter: FalMusicAdapter, output: MusicOutput) -> bytes:
    return b"".join([chunk async for chunk in adapter.download(output)])


def drive(adapter: FalMusicAdapter, scenario: Callable[[FalMusicAdapter], Awaitable[T]]) -> T:
    """Run ``scenario`` against a started adapter, closing it whatever happens."""

    async def main() -> T:
        await adapter.start()
        try:
            return await scenario(adapter)
        finally:
            await adapter.close()

    return asyncio.run(main())


def test_text_to_audio_job_end_to_end(upstream: tuple[str, FalPlan]) -> None:
    url, plan = upstream

    async def scenario(adapter: FalMusicAdapter) -> tuple[list[MusicStatus], bytes]:
        states = await run_job(adapter, music())
        return states, await collect(adapter, states[-1].outputs[0])

    states, audio = drive(adapter_for(url, input_defaults={"steps": 20}), scenario)
    assert [s.state for s in states] == ["queued", "running", "succeeded"]
    assert states[-1].outputs[0].content_type == "audio/wav"
    assert audio == WAV
    with wave.open(io.BytesIO(audio)) as parsed:
        assert parsed.getnframes() > 0
    submit, *polls, download = plan.requests
    assert submit.path == "/fal-ai/stable-audio"
    assert submit.body == {"steps": 20, "prompt": music().prompt, "seconds_total": 10}
    assert submit.headers["authorization"] == f"Key {KEY}"
    result_path = polls[-1].path
    assert result_path.startswith("/fal-ai/stable-audio/requests/")
    assert [p.path for p in polls[:-1]] == [result_path + "/status"] * 3
    assert "authorization" not in download.headers  # the file host gets no key


def test_remix_sends_the_reference_inline_and_reads_the_audio_shape(
    upstream: tuple[str, FalPlan], tmp_path: Path
) -> None:
    url, plan = upstream
    hum = tmp_path / "hum.wav"
    hum.write_bytes(WAV)
    request = music("fal-ai/ace-step/audio-to-audio", reference=reference(hum), lyrics="oh")

    states = drive(adapter_for(url), lambda adapter: run_job(adapter, request))
    assert states[-1].state == "succeeded" and states[-1].outputs[0].url
    sent = plan.requests[0]
    assert sent.path == "/fal-ai/ace-step/audio-to-audio"
    assert sent.body["audio_url"] == data_uri("audio/wav", WAV)
    assert sent.body["lyrics"] == "oh" and sent.body["edit_mode"] == "remix"
    # fal's request URLs drop the model's sub-path; the adapter must follow the returned ones.
    assert plan.requests[1].path.startswith("/fal-ai/ace-step/requests/")


def test_oversized_reference_is_refused_before_sending(
    upstream: tuple[str, FalPlan], tmp_path: Path
) -> None:
    url, plan = upstream
    hum = tmp_path / "hum.wav"
    hum.write_bytes(WAV)
    request = music("fal-ai/ace-step/audio-to-audio", reference=reference(hum, size=10**9))
    with pytest.raises(UpstreamError) as caught:
        submit_once(adapter_for(url), request)
    assert caught.value.kind == "client_error" and plan.calls == 0


def submit_once(adapter: FalMusicAdapter, request: MusicRequest) -> MusicJob:
    return drive(adapter, lambda started: started.submit(request))


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ({"status": 422, "message": "prompt is too long"}, "client_error"),
        ({"status": 500}, "server"),
        ({"status": 429, "headers": {"Retry-After": "4"}}, "rate_limited"),
    ],
)
def test_submit_faults(upstream: tuple[str, FalPlan], fault: dict[str, Any], kind: str) -> None:
    url, plan = upstream
    plan.push("status", **fault)
    with pytest.raises(UpstreamError) as caught:
        submit_once(adapter_for(url), music())
    assert caught.value.kind == kind
    if kind == "client_error":
        assert caught.value.message == "prompt: prompt is too long"
    if kind == "rate_limited":
        assert caught.value.retry_after == 4.0


def test_wrong_key_is_an_auth_error(upstream: tuple[str, FalPlan]) -> None:
    url, _ = upstream
    with pytest.raises(UpstreamError) as caught:
        submit_once(adapter_for(url, key="wrong"), music())
    assert caught.value.kind == "auth" and caught.value.status == 401


def test_poll_rate_limit_then_failed_job(upstream: tuple[str, FalPlan]) -> None:
    url, plan = upstream
    plan.fail_next_job(500, "CUDA out of memory", error_type="runner_server_error")

    async def scenario(adapter: FalMusicAdapter) -> tuple[UpstreamError, list[MusicStatus]]:
        job = await adapter.submit(music())
        plan.push("status", status=429, headers={"Retry-After": "1"})
        with pytest.raises(UpstreamError) as caught:
            await adapter.poll(job)
        return caught.value, [await adapter.poll(job) for _ in range(3)]

    limited, states = drive(adapter_for(url), scenario)
    assert limited.kind == "rate_limited" and limited.retry_after == 1.0
    assert [s.state for s in states] == ["queued", "running", "failed"]
    error = states[-1].error
    assert error is not None and error.kind == "server" and "CUDA out of memory" in error.message


def test_cancel_reaches_fal_and_the_job_ends_canceled(upstream: tuple[str, FalPlan]) -> None:
    url, plan = upstream

    async def scenario(adapter: FalMusicAdapter) -> tuple[str, MusicStatus]:
        job = await adapter.submit(music())
        assert (await adapter.poll(job)).state == "queued"
        await adapter.cancel(job)
        status = await adapter.poll(job)
        await adapter.cancel(job)  # already completed: fal says 400, nothing left to stop
        return job.job_id, status

    job_id, status = drive(adapter_for(url), scenario)
    assert plan.cancelled == [job_id]
    assert status.state == "canceled"
    cancels = [r for r in plan.requests if r.path.endswith("/cancel")]
    assert len(cancels) == 2 and cancels[0].headers["authorization"] == f"Key {KEY}"


def test_expired_file_url(upstream: tuple[str, FalPlan]) -> None:
    url, plan = upstream

    async def scenario(adapter: FalMusicAdapter) -> bytes:
        states = await run_job(adapter, music())
        plan.file_status = 404
        return await collect(adapter, states[-1].outputs[0])

    with pytest.raises(UpstreamError) as caught:
        drive(adapter_for(url), scenario)
    assert caught.value.kind == "server" and "expired" in caught.value.message


def test_malformed_and_reset_answers(upstream: tuple[str, FalPlan]) -> None:
    url, plan = upstream
    plan.push("malformed")
    with pytest.raises(UpstreamError) as malformed:
        submit_once(adapter_for(url), music())
    assert malformed.value.kind == "server"
    plan.push("reset")
    with pytest.raises(UpstreamError) as reset:
        submit_once(adapter_for(url), music())
    assert reset.value.kind == "connect"
