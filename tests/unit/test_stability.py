"""The Stable Audio adapter: its pure translation, then the adapter against the fake server."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import wave
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest

from providers.base import ProviderSettings, UpstreamError
from providers.music.base import (
    MusicAdapter,
    MusicJob,
    MusicOutput,
    MusicRequest,
    MusicStatus,
    ReferenceAudio,
)
from providers.music.stability import (
    StabilityMusicAdapter,
    build_form,
    endpoint_path,
    error_from_response,
    parse_audio_reply,
)
from tests.fakes.server import serve_aiohttp
from tests.fakes.stability_upstream import API_PATH, StabilityFaultPlan, make_app

T = TypeVar("T")
API_KEY = "sk-test-stability-key"
PROMPT = "Warm lo-fi hip hop, dusty vinyl drums, mellow Rhodes chords, 80 BPM"


BASE = MusicRequest("stable-audio-2.5", "req_1", "task_1", PROMPT, 30.0, "mp3")


def request(**changes: Any) -> MusicRequest:
    return dataclasses.replace(BASE, **changes)


def reference(
    path: Path = Path("loop.wav"), strength: float | None = None, mode: str = "remix"
) -> ReferenceAudio:
    size = path.stat().st_size if path.is_file() else 0
    return ReferenceAudio(path, "audio/wav", "loop.wav", size, mode, strength)


# --- pure translation -----------------------------------------------------------------------


def test_endpoint_is_chosen_by_the_reference() -> None:
    assert endpoint_path(request()) == "/v2beta/audio/stable-audio-2/text-to-audio"
    remix = request(reference=reference())
    assert endpoint_path(remix) == "/v2beta/audio/stable-audio-2/audio-to-audio"
    assert endpoint_path(remix, "/v2beta/audio/stable-audio/") == (
        "/v2beta/audio/stable-audio/audio-to-audio"
    )


def test_text_form_sends_only_what_is_set() -> None:
    assert build_form(request()) == [
        ("prompt", PROMPT),
        ("duration", "30"),
        ("output_format", "mp3"),
        ("model", "stable-audio-2.5"),
    ]
    full = dict(
        build_form(request(duration_seconds=12.5, format="wav", seed=42), steps=8, cfg_scale=1.5)
    )
    assert full["duration"] == "12.5" and full["output_format"] == "wav"
    assert (full["seed"], full["steps"], full["cfg_scale"]) == ("42", "8", "1.5")
    assert "strength" not in dict(build_form(request(), default_strength=0.5))
    assert "model" not in dict(build_form(request(upstream_model="")))


def test_remix_strength_and_what_stable_audio_refuses() -> None:
    own = request(reference=reference(strength=0.35))
    assert dict(build_form(own, default_strength=0.9))["strength"] == "0.35"
    unset = request(reference=reference())
    assert dict(build_form(unset, default_strength=0.9))["strength"] == "0.9"
    assert "strength" not in dict(build_form(unset))  # Stability's documented default (1)
    for impossible in (request(lyrics="la"), request(reference=reference(mode="melody"))):
        with pytest.raises(UpstreamError) as caught:
            build_form(impossible)
        assert caught.value.kind == "client_error"


def test_audio_reply_is_checked() -> None:
    headers = {"content-type": "audio/mpeg", "finish-reason": "SUCCESS", "seed": "77"}
    output = parse_audio_reply(headers, b"ID3\x04audio", 30.0)
    assert output == MusicOutput("audio/mpeg", data=b"ID3\x04audio", duration_seconds=30.0)
    wav = parse_audio_reply({"content-type": "audio/wav; rate=44100"}, b"RIFF", None)
    assert wav.content_type == "audio/wav"
    cases = [
        ({**headers, "finish-reason": "CONTENT_FILTERED"}, b"ID3", "client_error"),
        ({**headers, "finish-reason": "ERROR"}, b"ID3", "server"),
        ({**headers, "content-type": "application/json"}, b'{"audio": "SUQz"}', "server"),
        ({"finish-reason": "SUCCESS"}, b"ID3", "server"),
        (headers, b"", "server"),
    ]
    for bad_headers, body, kind in cases:
        with pytest.raises(UpstreamError) as caught:
            parse_audio_reply(bad_headers, body, 30.0)
        assert caught.value.kind == kind, bad_headers


def stability_error(name: str, *errors: str) -> bytes:
    return orjson.dumps({"id": "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6", "name": name, "errors": errors})


RETRY_60 = {"retry-after": "60"}


@pytest.mark.parametrize(
    ("status", "name", "headers", "kind", "retry_after"),
    [
        (400, "bad_request", {}, "client_error", None),
        (401, "unauthorized", {}, "auth", None),
        (402, "payment_required", {}, "auth", None),
        (403, "content_moderation", {}, "client_error", None),
        (403, "forbidden", {}, "auth", None),
        (413, "payload_too_large", {}, "client_error", None),
        (422, "invalid_language", {}, "client_error", None),
        (429, "rate_limit_exceeded", RETRY_60, "rate_limited", 60.0),
        (500, "internal_error", {}, "server", None),
        (502, "", {}, "server", None),  # a proxy's HTML page, not Stability's JSON
    ],
)
def test_error_classification(
    status: int, name: str, headers: dict[str, str], kind: str, retry_after: float | None
) -> None:
    body = stability_error(name, f"{name}: details") if name else b"<html>Bad Gateway</html>"
    error = error_from_response(status, body, headers)
    assert (error.kind, error.status, error.retry_after) == (kind, status, retry_after)
    if kind == "client_error":
        assert error.message == f"{name}: details"


def test_error_messages_pass_through_cleaned() -> None:
    two = error_from_response(400, stability_error("bad_request", "seed: too big", "steps: 0"), {})
    assert two.message == "seed: too big; steps: 0"
    body = stability_error("bad_request", "see https://internal.example/x", "key sk-abcdef123456")
    error = error_from_response(400, body, {})
    assert error.message.startswith("see [url]") and error.message.endswith("key [redacted]")
    assert "internal.example" not in error.message and "sk-abcdef" not in error.message
    moderation = error_from_response(403, stability_error("content_moderation"), {})
    assert moderation.kind == "client_error" and "moderation" in moderation.message


def test_adapter_shape_poll_cancel_and_download() -> None:
    adapter: MusicAdapter = StabilityMusicAdapter(ProviderSettings("s", "stability"))
    assert (adapter.kind, adapter.max_duration_seconds) == ("stability", 190.0)
    assert adapter.formats == {"mp3", "wav"} and adapter.reference_modes == {"remix"}
    assert StabilityMusicAdapter.supports_lyrics is False
    shorter = StabilityMusicAdapter(
        ProviderSettings("s", "stability", options={"max_duration_seconds": 47})
    )
    assert shorter.max_duration_seconds == 47.0

    async def scenario() -> tuple[MusicStatus, MusicStatus, list[bytes]]:
        done = MusicStatus("succeeded", progress=1.0)
        kept = await adapter.poll(MusicJob("stability-1", done=done))
        await adapter.cancel(MusicJob("stability-1"))
        lost = await adapter.poll(MusicJob("stability-1"))
        data = bytes(range(256)) * 2400  # 600 KiB
        chunks = [c async for c in adapter.download(MusicOutput("audio/wav", data=data))]
        with pytest.raises(UpstreamError):
            await anext(adapter.download(MusicOutput("audio/mpeg", url="https://x.example/a")))
        return kept, lost, chunks

    kept, lost, chunks = asyncio.run(scenario())
    assert kept.state == "succeeded"
    assert lost.state == "failed" and lost.error is not None
    assert lost.error.kind == "server" and "restarted" in lost.error.message
    assert [len(c) for c in chunks] == [262144, 262144, 90112]
    assert b"".join(chunks) == bytes(range(256)) * 2400


# --- against the fake server ----------------------------------------------------------------


@pytest.fixture
def plan() -> StabilityFaultPlan:
    return StabilityFaultPlan()


@pytest.fixture
def url(plan: StabilityFaultPlan) -> Iterator[str]:
    with serve_aiohttp(make_app(plan, api_key=API_KEY)) as base_url:
        yield base_url


def run(
    url: str,
    action: Callable[[StabilityMusicAdapter], Awaitable[T]],
    *,
    api_key: str = API_KEY,
    read_timeout: float = 2.0,
) -> T:
    """Start an adapter, run ``action`` with it in a fresh event loop, close it."""

    async def main() -> T:
        settings = ProviderSettings(
            "stability", "stability", base_url=url, api_key=api_key, read_timeout=read_timeout
        )
        adapter = StabilityMusicAdapter(settings)
        await adapter.start()
        try:
            return await action(adapter)
        finally:
            await adapter.close()

    return asyncio.run(main())


def submit(music: MusicRequest) -> Callable[[StabilityMusicAdapter], Awaitable[MusicJob]]:
    return lambda adapter: adapter.submit(music)


def test_text_to_audio_finishes_inside_submit(url: str, plan: StabilityFaultPlan) -> None:
    job = run(url, submit(request(seed=7)))
    assert job.job_id.startswith("stability-") and job.data == {}
    assert job.done is not None and job.done.state == "succeeded" and job.done.progress == 1.0
    (output,) = job.done.outputs
    assert output.content_type == "audio/mpeg" and output.duration_seconds == 30.0
    assert output.data is not None and output.data.startswith(b"ID3")
    (sent,) = plan.requests
    assert sent.path == API_PATH + "/text-to-audio"
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["accept"] == "audio/*"
    assert sent.headers["content-type"].startswith("multipart/form-data")
    assert sent.body["fields"] == {
        "prompt": PROMPT,
        "duration": "30",
        "output_format": "mp3",
        "model": "stable-audio-2.5",
        "seed": "7",
    }
    assert sent.body["files"] == {}


def test_remix_uploads_the_reference_intact_and_gets_wav(
    url: str, plan: StabilityFaultPlan, tmp_path: Path
) -> None:
    recording = tmp_path / "loop.wav"
    content = hashlib.sha256(b"seed").digest() * 20_000  # 640 KB, more than one read buffer
    recording.write_bytes(content)
    job = run(url, submit(request(format="wav", reference=reference(recording, strength=0.35))))
    assert job.done is not None and job.done.state == "succeeded"
    (output,) = job.done.outputs
    assert output.content_type == "audio/wav" and output.data is not None
    with wave.open(io.BytesIO(output.data)) as audio:  # the fake's WAV is a real one
        assert audio.getnframes() > 0
    (sent,) = plan.requests
    assert sent.path == API_PATH + "/audio-to-audio"
    assert sent.body["fields"]["strength"] == "0.35"
    assert sent.body["files"] == {
        "audio": {
            "filename": "loop.wav",
            "content_type": "audio/wav",
            "size": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
        }
    }


@pytest.mark.parametrize(
    ("fault", "options", "kind"),
    [
        ("status", {"status": 403}, "client_error"),
        ("status", {"status": 422}, "client_error"),
        ("status", {"status": 400, "message": "prompt: too vague"}, "client_error"),
        ("status", {"status": 429, "headers": {"Retry-After": "7"}}, "rate_limited"),
        ("status", {"status": 500}, "server"),
        ("malformed", {}, "server"),
        ("filtered", {}, "client_error"),
        ("empty", {}, "server"),
        ("reset", {}, "connect"),
    ],
)
def test_faults_become_upstream_errors(
    url: str, plan: StabilityFaultPlan, fault: str, options: dict[str, Any], kind: str
) -> None:
    plan.push(fault, **options)
    with pytest.raises(UpstreamError) as caught:
        run(url, submit(request()))
    assert caught.value.kind == kind and plan.calls == 1
    assert caught.value.retry_after == (7.0 if kind == "rate_limited" else None)
    if options.get("status") == 403:
        assert "moderation" in caught.value.message
    if "message" in options:
        assert caught.value.message == options["message"]


def test_wrong_key_and_invalid_fields(url: str, plan: StabilityFaultPlan) -> None:
    with pytest.raises(UpstreamError) as wrong_key:
        run(url, submit(request()), api_key="sk-not-the-key")
    assert wrong_key.value.kind == "auth" and wrong_key.value.status == 401
    with pytest.raises(UpstreamError) as too_long:
        run(url, submit(request(duration_seconds=500.0)))
    assert too_long.value.kind == "client_error" and "duration" in too_long.value.message
    assert plan.calls == 2


def test_slow_generation_hits_the_read_timeout(url: str, plan: StabilityFaultPlan) -> None:
    plan.push("slow", delay=3.0)
    with pytest.raises(UpstreamError) as caught:
        run(url, submit(request()), read_timeout=0.1)
    assert caught.value.kind == "timeout"


def test_cancelling_submit_hangs_up_on_the_provider(url: str, plan: StabilityFaultPlan) -> None:
    plan.push("slow", delay=5.0)

    async def cancel_midway(adapter: StabilityMusicAdapter) -> int:
        call = asyncio.create_task(adapter.submit(request()))
        await until(lambda: plan.calls == 1)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await until(lambda: plan.abandoned_requests == 1)
        return plan.abandoned_requests

    assert run(url, cancel_midway) == 1


async def until(condition: Callable[[], bool], within: float = 3.0) -> None:
    """Wait in small async steps for the fake's thread to make ``condition`` true."""
    for _ in range(int(within / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")
