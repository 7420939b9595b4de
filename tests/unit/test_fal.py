"""The fal.ai music adapter's pure translation (the adapter against a fake fal queue is
test_fal_adapter.py).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest

from providers.base import ProviderSettings, UpstreamError
from providers.hosted.fal_api import (
    data_uri,
    error_from_response,
    file_error,
    parse_queue_status,
)
from providers.music.base import MusicOutput, MusicRequest, MusicStatus, ReferenceAudio
from providers.music.fal import (
    FalMusicAdapter,
    JobFailedError,
    result_error,
)
from providers.music.fal_wire import (
    ACE_STEP,
    ACE_STEP_PROMPT,
    ACE_STEP_REMIX,
    GENERIC,
    STABLE_AUDIO,
    audio_content_type,
    build_input,
    family_for,
    parse_result,
    parse_submit,
)

T = TypeVar("T")
KEY = "fal-test-key-123"
QUEUE = "https://queue.fal.run/fal-ai/stable-audio/requests/764cabcf-b745-4b3e-ae38-1200304cf45b"


def music(model: str = "fal-ai/stable-audio", **changes: Any) -> MusicRequest:
    fields: dict[str, Any] = {
        "upstream_model": model,
        "request_id": "req_1",
        "task_id": "task_1",
        "prompt": "128 BPM tech house drum loop",
        "duration_seconds": 10.4,
        "format": "wav",
    }
    fields.update(changes)
    return MusicRequest(**fields)


def reference(path: Path, size: int | None = None) -> ReferenceAudio:
    return ReferenceAudio(
        path=path,
        content_type="audio/wav",
        filename="hum.wav",
        size=path.stat().st_size if size is None else size,
        mode="remix",
    )


# ---- pure translation -------------------------------------------------------------------------


def test_stable_audio_input_takes_whole_seconds_and_no_seed() -> None:
    body = build_input(music(seed=7), STABLE_AUDIO, None, {"steps": 50, "seconds_total": 3})
    assert body == {"steps": 50, "prompt": "128 BPM tech house drum loop", "seconds_total": 10}


def test_ace_step_inputs_map_prompt_lyrics_and_instrumental() -> None:
    sung = build_input(
        music("fal-ai/ace-step", lyrics="[verse]\nla la", seed=3), ACE_STEP, None, {}
    )
    assert sung == {
        "tags": "128 BPM tech house drum loop",
        "duration": 10.4,
        "seed": 3,
        "lyrics": "[verse]\nla la",
    }
    plain = build_input(music("fal-ai/ace-step", instrumental=True), ACE_STEP, None, {})
    assert plain["lyrics"] == "[instrumental]"
    prompted = build_input(music(instrumental=True), ACE_STEP_PROMPT, None, {})
    assert prompted["instrumental"] is True and prompted["prompt"].startswith("128 BPM")


def test_remix_input_carries_the_reference_and_original_tags() -> None:
    uri = data_uri("audio/wav", b"RIFF1234")
    assert uri == "data:audio/wav;base64," + base64.b64encode(b"RIFF1234").decode()
    request = music("fal-ai/ace-step/audio-to-audio", reference=object())
    body = build_input(request, ACE_STEP_REMIX, uri, {})
    assert body["audio_url"] == uri and body["edit_mode"] == "remix"
    assert body["tags"] == body["original_tags"] == request.prompt
    assert "duration" not in body
    given = build_input(request, ACE_STEP_REMIX, uri, {"original_tags": "acoustic, folk"})
    assert given["original_tags"] == "acoustic, folk"


@pytest.mark.parametrize(
    ("request_", "family", "words"),
    [
        (music(reference=object()), STABLE_AUDIO, "takes no reference"),
        (music("fal-ai/ace-step/audio-to-audio"), ACE_STEP_REMIX, "needs a reference"),
        (music(lyrics="hello"), STABLE_AUDIO, "does not take lyrics"),
        (music(duration_seconds=60), STABLE_AUDIO, "between 1 and 47"),
        (music("fal-ai/ace-step", duration_seconds=2), ACE_STEP, "between 5 and 240"),
    ],
)
def test_requests_a_model_cannot_take_are_client_errors(
    request_: MusicRequest, family: Any, words: str
) -> None:
    with pytest.raises(UpstreamError) as caught:
        build_input(request_, family, "data:audio/wav;base64,AA==", {})
    assert caught.value.kind == "client_error" and words in caught.value.message


def test_model_families_known_mapped_and_generic() -> None:
    assert family_for("fal-ai/stable-audio", {}) is STABLE_AUDIO
    assert family_for("fal-ai/ace-step/audio-to-audio", {}) is ACE_STEP_REMIX
    assert family_for("someone/custom-music", {}) is GENERIC
    assert family_for("someone/custom-music", {"someone/custom-music": "ace-step"}) is ACE_STEP


def test_submit_answer_gives_the_job_and_its_urls() -> None:
    raw = orjson.dumps(
        {
            "request_id": "764cabcf-b745-4b3e-ae38-1200304cf45b",
            "response_url": QUEUE,
            "status_url": QUEUE + "/status",
            "cancel_url": QUEUE + "/cancel",
            "queue_position": 0,
        }
    )
    job = parse_submit(raw)
    assert job.job_id == "764cabcf-b745-4b3e-ae38-1200304cf45b"
    assert job.data == {
        "status_url": QUEUE + "/status",
        "response_url": QUEUE,
        "cancel_url": QUEUE + "/cancel",
    }
    for bad in (b"{", b"[]", orjson.dumps({"request_id": "x", "status_url": QUEUE})):
        with pytest.raises(UpstreamError) as caught:
            parse_submit(bad)
        assert caught.value.kind == "server"


def test_queue_status_values() -> None:
    for status in ("IN_QUEUE", "IN_PROGRESS", "COMPLETED"):
        body = {"status": status, "request_id": "r", "response_url": QUEUE, "logs": None}
        assert parse_queue_status(orjson.dumps(body)) == status
    for bad in (b'{"status": "FAILED"}', b"nope", b"{}"):
        with pytest.raises(UpstreamError):
            parse_queue_status(bad)


def test_results_in_both_file_shapes_and_inline() -> None:
    stable = {
        "audio_file": {
            "url": "https://v3.fal.media/files/panda/x8aYxo_output.wav",
            "content_type": "application/octet-stream",
            "file_name": "output.wav",
            "file_size": 4404019,
        }
    }
    assert parse_result(orjson.dumps(stable)) == (
        MusicOutput("audio/wav", url="https://v3.fal.media/files/panda/x8aYxo_output.wav"),
    )
    ace = {
        "audio": {"url": "https://v3.fal.media/files/a.mp3", "content_type": "audio/mpeg"},
        "seed": 42,
        "tags": "lofi",
        "lyrics": "",
    }
    assert parse_result(orjson.dumps(ace))[0].content_type == "audio/mpeg"
    inline = {"audio": {"url": data_uri("audio/wav", b"RIFFdata"), "content_type": "audio/wav"}}
    assert parse_result(orjson.dumps(inline)) == (MusicOutput("audio/wav", data=b"RIFFdata"),)
    assert audio_content_type({"url": "https://x/f.flac?sig=1"}) == "audio/flac"
    assert audio_content_type({"url": "https://x/f", "content_type": "audio/x-wav"}) == "audio/wav"
    for bad in (
        {"seed": 1},
        {"audio": {"content_type": "audio/wav"}},
        {"audio": {"url": "data:x"}},
    ):
        with pytest.raises(UpstreamError):
            parse_result(orjson.dumps(bad))


VALIDATION = {
    "detail": [
        {
            "loc": ["body", "seconds_total"],
            "msg": "Input should be less than or equal to 47",
            "type": "less_than_equal",
            "url": "https://docs.fal.ai/errors#less_than_equal",
        }
    ]
}


def test_error_answers_are_classified() -> None:
    invalid = error_from_response(422, orjson.dumps(VALIDATION), {})
    assert invalid.kind == "client_error"
    assert invalid.message == "seconds_total: Input should be less than or equal to 47"
    limited = error_from_response(429, b'{"detail": "Too many requests"}', {"retry-after": "3"})
    assert limited.kind == "rate_limited" and limited.retry_after == 3.0
    assert error_from_response(401, b'{"detail": "No user found"}', {}).kind == "auth"
    timed_out = orjson.dumps({"detail": "Request timed out", "error_type": "request_timeout"})
    assert error_from_response(504, timed_out, {}).kind == "timeout"
    leaky = orjson.dumps({"detail": "bad https://internal.example/x key_ABCDEFGHIJKL"})
    assert "internal.example" not in error_from_response(400, leaky, {}).message


def outcome(status: int, body: bytes, headers: dict[str, str] | None = None) -> MusicStatus:
    error = result_error(status, body, headers or {})
    assert isinstance(error, JobFailedError), error
    return error.outcome


def test_result_errors_are_the_jobs_outcome_unless_the_poll_itself_failed() -> None:
    invalid = outcome(422, orjson.dumps(VALIDATION))
    assert invalid.state == "failed" and invalid.error is not None
    assert invalid.error.kind == "client_error"
    crashed = orjson.dumps({"detail": "Runner crashed", "error_type": "runner_server_error"})
    failed = outcome(500, crashed)
    assert failed.error is not None and failed.error.kind == "server"
    assert "Runner crashed" in failed.error.message
    canceled = orjson.dumps({"detail": "Cancelled", "error_type": "client_cancelled"})
    assert outcome(499, canceled).state == "canceled"
    assert outcome(404, b'{"detail": "Request not found"}').state == "failed"
    for status, body in ((429, b"{}"), (401, b"{}"), (502, b"<html>nginx</html>")):
        error = result_error(status, body, {"retry-after": "2"})
        assert not isinstance(error, JobFailedError)
    assert result_error(429, b"{}", {"retry-after": "2"}).retry_after == 2.0


def test_file_url_errors() -> None:
    for status in (403, 404, 410):
        error = file_error(status, b"NoSuchKey", {})
        assert error.kind == "server" and "expired" in error.message
    assert file_error(503, b"", {}).kind == "server"


def test_capabilities_and_options() -> None:
    plain = FalMusicAdapter(ProviderSettings(name="fal", kind="fal", api_key=KEY))
    assert plain.kind == "fal" and plain.formats == frozenset({"wav"})
    assert plain.reference_modes == frozenset({"remix"}) and plain.supports_lyrics
    assert plain.max_duration_seconds == 47.0
    options = {"max_duration_seconds": 240, "supports_lyrics": False, "reference_modes": []}
    narrowed = FalMusicAdapter(ProviderSettings(name="fal", kind="fal", options=options))
    assert narrowed.max_duration_seconds == 240.0 and not narrowed.supports_lyrics
    assert narrowed.reference_modes == frozenset()
    for bad in ({"reference_modes": ["melody"]}, {"model_families": {"x/y": "nope"}}):
        with pytest.raises(ValueError):
            FalMusicAdapter(ProviderSettings(name="fal", kind="fal", options=bad))
