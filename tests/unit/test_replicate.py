"""The Replicate music adapter's pure translation (the adapter against a fake Replicate over
real HTTP is test_replicate_adapter.py).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest

from providers.base import UpstreamError
from providers.hosted.replicate_api import (
    ModelRef,
    create_request,
    data_url,
    download_error,
    error_from_response,
    failure_error,
    parse_model_ref,
    parse_prediction,
)
from providers.music.base import MusicOutput, MusicRequest, MusicStatus, ReferenceAudio
from providers.music.replicate_wire import (
    MusicgenConfig,
    build_input,
    content_type_of,
    job_from_prediction,
    parse_progress,
    status_from_prediction,
)
from tests.fakes.replicate_upstream import VERSION, wav_bytes

KEY = "r8_fake_token_for_tests"
T = TypeVar("T")


def music(**changes: Any) -> MusicRequest:
    fields: dict[str, Any] = {
        "upstream_model": "meta/musicgen",
        "request_id": "req_1",
        "task_id": "task_1",
        "prompt": "lo-fi beat with warm keys",
        "duration_seconds": 7.6,
        "format": "wav",
    }
    fields.update(changes)
    return MusicRequest(**fields)


def reference(path: Path, mode: str) -> ReferenceAudio:
    return ReferenceAudio(path, "audio/wav", path.name, path.stat().st_size, mode)


def prediction(status: str, **fields: Any) -> dict[str, Any]:
    """A prediction body shaped like Replicate's documented answer."""
    base = "https://api.replicate.com/v1/predictions/gm3qorzdhgbfurvjtvhg6dckhu"
    body: dict[str, Any] = {
        "id": "gm3qorzdhgbfurvjtvhg6dckhu",
        "model": "meta/musicgen",
        "version": VERSION,
        "input": {"prompt": "lo-fi beat", "duration": 8},
        "logs": "",
        "output": None,
        "data_removed": False,
        "error": None,
        "status": status,
        "created_at": "2024-05-01T10:00:00.000Z",
        "urls": {"get": base, "cancel": f"{base}/cancel", "web": "https://replicate.com/p/x"},
    }
    body.update(fields)
    return body


# ---- pure translation ----------------------------------------------------------------------


def test_model_references() -> None:
    assert parse_model_ref("meta/musicgen") == ModelRef("meta", "musicgen")
    assert parse_model_ref(f"meta/musicgen:{VERSION}") == ModelRef("meta", "musicgen", VERSION)
    for bad in ("musicgen", "meta/musicgen:", "a/b/c", ""):
        with pytest.raises(UpstreamError) as caught:
            parse_model_ref(bad)
        assert caught.value.kind == "server"


def test_create_request_uses_the_models_endpoint_or_the_pinned_version() -> None:
    path, body = create_request(ModelRef("meta", "musicgen"), {"prompt": "x"}, "/v1")
    assert path == "/v1/models/meta/musicgen/predictions"
    assert orjson.loads(body) == {"input": {"prompt": "x"}}
    path, body = create_request(ModelRef("meta", "musicgen", VERSION), {"prompt": "x"}, "")
    assert path == "/predictions"
    assert orjson.loads(body) == {"version": VERSION, "input": {"prompt": "x"}}


def test_text_only_input() -> None:
    config = MusicgenConfig.from_options(
        {"normalization_strategy": "peak", "temperature": 0.9, "top_k": 200, "top_p": None}
    )
    body = build_input(music(seed=7, format="mp3"), config, None)
    assert body == {
        "prompt": "lo-fi beat with warm keys",
        "duration": 8,
        "output_format": "mp3",
        "model_version": "stereo-melody-large",
        "normalization_strategy": "peak",
        "temperature": 0.9,
        "top_k": 200,
        "seed": 7,
    }
    assert build_input(music(duration_seconds=0.2), MusicgenConfig(), None)["duration"] == 1


def test_reference_modes_choose_model_and_continuation(tmp_path: Path) -> None:
    clip = tmp_path / "ref.wav"
    clip.write_bytes(wav_bytes())
    config = MusicgenConfig(model_version="large", melody_model_version="melody-large")
    melody = build_input(music(reference=reference(clip, "melody")), config, "data:x")
    assert melody["model_version"] == "melody-large"
    assert melody["continuation"] is False and melody["input_audio"] == "data:x"
    cont = build_input(music(reference=reference(clip, "continuation")), config, "https://f/1")
    assert cont["model_version"] == "large"
    assert cont["continuation"] is True and cont["input_audio"] == "https://f/1"


def test_unsupported_requests_are_the_clients_mistake(tmp_path: Path) -> None:
    clip = tmp_path / "ref.wav"
    clip.write_bytes(wav_bytes())
    for request in (
        music(lyrics="la la la"),
        music(format="flac"),
        music(reference=reference(clip, "remix")),
    ):
        with pytest.raises(UpstreamError) as caught:
            build_input(request, MusicgenConfig(), "data:x")
        assert caught.value.kind == "client_error"


def test_states_map_to_task_states() -> None:
    assert status_from_prediction(prediction("starting"), "wav") == MusicStatus("queued")
    running = status_from_prediction(
        prediction("processing", logs="Using seed: 1\n 12%|#  | 3/25\n 45%|####5 | 677/1500"),
        "wav",
    )
    assert running.state == "running" and running.progress == 0.45
    assert status_from_prediction(prediction("canceled"), "wav").state == "canceled"
    aborted = status_from_prediction(prediction("aborted"), "wav")
    assert aborted.state == "failed" and aborted.error is not None
    assert aborted.error.kind == "server"
    with pytest.raises(UpstreamError):
        status_from_prediction(prediction("paused"), "wav")


def test_succeeded_outputs_string_or_list() -> None:
    url = "https://replicate.delivery/pbxt/abc/out.mp3"
    done = status_from_prediction(prediction("succeeded", output=url), "wav")
    assert done.state == "succeeded" and done.progress == 1.0
    assert done.outputs == (MusicOutput(content_type="audio/mpeg", url=url),)
    listed = status_from_prediction(prediction("succeeded", output=[url, url]), "mp3")
    assert len(listed.outputs) == 2
    no_extension = status_from_prediction(prediction("succeeded", output="https://x/f"), "wav")
    assert no_extension.outputs[0].content_type == "audio/wav"
    for empty in ({"output": None}, {"output": url, "data_removed": True}):
        gone = status_from_prediction(prediction("succeeded", **empty), "wav")
        assert gone.state == "failed" and gone.error is not None


def test_failed_predictions_blame_the_input_only_when_it_says_so() -> None:
    bad_audio = failure_error("ValueError: could not decode input_audio at https://x.io/a.wav")
    assert bad_audio.kind == "client_error"
    assert "x.io" not in bad_audio.message and "[url]" in bad_audio.message
    oom = status_from_prediction(prediction("failed", error="CUDA out of memory"), "wav")
    assert oom.state == "failed" and oom.error is not None
    assert oom.error.kind == "server" and oom.error.message == "CUDA out of memory"
    assert failure_error(None).kind == "server"
    assert failure_error("CUDA error: invalid device function").kind == "server"
    assert failure_error("Input validation failed: duration must be <= 30").kind == "client_error"


def test_job_keeps_the_urls_and_finishes_early_when_already_done() -> None:
    job = job_from_prediction(prediction("starting"), "wav", "/v1")
    assert job.job_id == "gm3qorzdhgbfurvjtvhg6dckhu" and job.done is None
    assert job.data == {
        "get": "https://api.replicate.com/v1/predictions/gm3qorzdhgbfurvjtvhg6dckhu",
        "cancel": "https://api.replicate.com/v1/predictions/gm3qorzdhgbfurvjtvhg6dckhu/cancel",
        "format": "wav",
    }
    bare = job_from_prediction({"id": "p1", "status": "starting"}, "mp3", "/v1")
    assert bare.data["get"] == "/v1/predictions/p1"
    assert bare.data["cancel"] == "/v1/predictions/p1/cancel"
    done = job_from_prediction(prediction("succeeded", output="https://d/o.wav"), "wav", "/v1")
    assert done.done is not None and done.done.state == "succeeded"


def test_malformed_predictions() -> None:
    for raw in (b"{oops", b"[1]", b'{"id": "x"}', b'{"status": "starting"}'):
        with pytest.raises(UpstreamError) as caught:
            parse_prediction(raw)
        assert caught.value.kind == "server"


THROTTLED = "Request was throttled."


@pytest.mark.parametrize(
    ("status", "body", "headers", "kind", "retry_after"),
    [
        (401, {"title": "Unauthenticated", "detail": "No token"}, {}, "auth", None),
        (
            422,
            {"title": "Input validation failed", "detail": "- input.x"},
            {},
            "client_error",
            None,
        ),
        (429, {"detail": f"{THROTTLED} Expected available in 3 seconds."}, {}, "rate_limited", 3.0),
        (429, {"detail": f"{THROTTLED} Your rate limit resets in ~30s."}, {}, "rate_limited", 30.0),
        (429, {"detail": THROTTLED}, {"retry-after": "7"}, "rate_limited", 7.0),
        (404, {"title": "Not found", "detail": "Not found."}, {}, "server", None),
        (500, {"title": "Internal Server Error"}, {}, "server", None),
    ],
)
def test_problem_bodies_are_classified(
    status: int, body: dict[str, Any], headers: dict[str, str], kind: str, retry_after: float | None
) -> None:
    error = error_from_response(status, orjson.dumps(body), headers)
    assert error.kind == kind and error.retry_after == retry_after and error.status == status
    if kind == "client_error":
        assert error.message == "- input.x"


def test_expired_output_urls() -> None:
    for status in (403, 404, 410):
        error = download_error(status, b"Not Found", {})
        assert error.kind == "server" and "expired" in error.message
    assert "expired" not in download_error(500, b"", {}).message


def test_data_url_content_type_and_progress() -> None:
    assert (
        data_url("audio/wav", b"RIFF")
        == "data:audio/wav;base64," + base64.b64encode(b"RIFF").decode()
    )
    assert content_type_of("https://d/out.WAV?sig=1", "mp3") == "audio/wav"
    assert parse_progress(None) is None and parse_progress("no bar") is None
