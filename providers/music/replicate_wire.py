"""Translation between the gateway's music types and Replicate's HTTP API (pure, no I/O).

Replicate runs ``meta/musicgen`` as a *prediction* (the API itself, shared with the image
adapter, is ``providers.hosted.replicate_api``). MusicGen's output is one URL (``output`` may
also be a list), deleted by Replicate after an hour; its progress is a bar in the logs.

MusicGen cannot sing: requests with lyrics are refused here, before anything is sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from providers.base import JSON, UpstreamError
from providers.hosted.replicate_api import failure_error, parse_object, prediction_urls
from providers.music.base import (
    TERMINAL_STATES,
    MusicJob,
    MusicOutput,
    MusicRequest,
    MusicState,
    MusicStatus,
)
from providers.scrub import STRUCTURAL, Scrubber

DEFAULT_MODEL_VERSION = "stereo-melody-large"
# Replicate's create-prediction docs: a data URL for files <= 256kb, an uploaded file above.
INLINE_REFERENCE_MAX_BYTES = 256 * 1024
CONTENT_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg"}
_EXTENSION_TYPES = {".wav": "audio/wav", ".mp3": "audio/mpeg", ".flac": "audio/flac"}
SAMPLING_OPTIONS = ("top_k", "top_p", "temperature", "classifier_free_guidance")
STATES: dict[str, MusicState] = {
    "starting": "queued",
    "processing": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "canceled": "canceled",
}

# MusicGen reports its sampling loop as a tqdm bar in the logs: " 45%|####5     | 677/1500 ...".
_PROGRESS = re.compile(r"(\d{1,3})%\|")


@dataclass(frozen=True, slots=True)
class MusicgenConfig:
    """Operator choices from ``ProviderSettings.options`` that every request carries."""

    model_version: str = DEFAULT_MODEL_VERSION
    melody_model_version: str = DEFAULT_MODEL_VERSION
    normalization_strategy: str | None = None  # None: the model's default (loudness)
    sampling: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> MusicgenConfig:
        strategy = options.get("normalization_strategy")
        return cls(
            model_version=str(options.get("model_version", DEFAULT_MODEL_VERSION)),
            melody_model_version=str(options.get("melody_model_version", DEFAULT_MODEL_VERSION)),
            normalization_strategy=str(strategy) if strategy else None,
            sampling={k: options[k] for k in SAMPLING_OPTIONS if options.get(k) is not None},
        )


def check_request(request: MusicRequest) -> None:
    """Refuse what MusicGen cannot do, before any upload or prediction is made."""
    if request.lyrics:
        raise UpstreamError(
            "client_error", "This model generates instrumentals; lyrics are not supported."
        )
    if request.format not in CONTENT_TYPES:
        raise UpstreamError("client_error", f"Output format {request.format!r} is not supported.")
    if request.reference is not None and request.reference.mode not in ("melody", "continuation"):
        raise UpstreamError(
            "client_error", f"Reference mode {request.reference.mode!r} is not supported."
        )


def build_input(request: MusicRequest, config: MusicgenConfig, reference_url: str | None) -> JSON:
    """MusicGen's ``input`` object; ``reference_url`` is the uploaded or inlined reference."""
    check_request(request)
    body: JSON = {
        "prompt": request.prompt,
        # MusicGen takes whole seconds.
        "duration": max(1, round(request.duration_seconds)),
        "output_format": request.format,
        "model_version": config.model_version,
    }
    if config.normalization_strategy:
        body["normalization_strategy"] = config.normalization_strategy
    body.update(config.sampling)
    if request.seed is not None:
        body["seed"] = request.seed
    reference = request.reference
    if reference is not None:
        if reference_url is None:
            raise ValueError("a request with a reference needs its URL")
        body["input_audio"] = reference_url
        if reference.mode == "melody":
            # Only the melody checkpoints accept a melody to follow.
            body["model_version"] = config.melody_model_version
            body["continuation"] = False
        else:
            body["continuation"] = True
    return body


def uploaded_file_url(raw: bytes) -> str:
    """The URL of a file created with ``POST /v1/files``, to pass as a model input."""
    urls = parse_object(raw).get("urls")
    url = urls.get("get") if isinstance(urls, dict) else None
    if not isinstance(url, str) or not url:
        raise UpstreamError("server", "The provider's file upload answer has no URL.")
    return url


def job_from_prediction(
    prediction: JSON, output_format: str, api_prefix: str, scrubber: Scrubber = STRUCTURAL
) -> MusicJob:
    """The job handle kept in the task record; finished already if Replicate says so."""
    job_id = str(prediction["id"])
    get_url, cancel_url = prediction_urls(prediction, api_prefix)
    data = {"get": get_url, "cancel": cancel_url, "format": output_format}
    status = status_from_prediction(prediction, output_format, scrubber)
    return MusicJob(job_id, data, done=status if status.state in TERMINAL_STATES else None)


def status_from_prediction(
    prediction: JSON, output_format: str | None, scrubber: Scrubber = STRUCTURAL
) -> MusicStatus:
    status = prediction.get("status")
    if status == "aborted":
        # Only a deadline aborts a prediction before it starts; we set none, so it is Replicate's.
        error = UpstreamError("server", "The provider aborted the job before it started.")
        return MusicStatus("failed", error=error)
    state = STATES.get(str(status))
    if state is None:
        raise UpstreamError("server", f"The provider reported an unknown status {status!r}.")
    if state == "failed":
        return MusicStatus("failed", error=failure_error(prediction.get("error"), scrubber))
    if state == "succeeded":
        outputs = outputs_of(prediction.get("output"), output_format)
        if prediction.get("data_removed") or not outputs:
            error = UpstreamError("server", "The provider finished without an audio file.")
            return MusicStatus("failed", error=error)
        return MusicStatus("succeeded", progress=1.0, outputs=outputs)
    progress = parse_progress(prediction.get("logs")) if state == "running" else None
    return MusicStatus(state, progress=progress)


def outputs_of(output: Any, output_format: str | None) -> tuple[MusicOutput, ...]:
    """MusicGen answers one URL; other versions of a model may answer a list of them."""
    urls = [output] if isinstance(output, str) else output if isinstance(output, list) else []
    return tuple(
        MusicOutput(content_type=content_type_of(url, output_format), url=url)
        for url in urls
        if isinstance(url, str) and url.startswith(("http://", "https://"))
    )


def content_type_of(url: str, output_format: str | None) -> str:
    path = urlsplit(url).path.lower()
    for extension, content_type in _EXTENSION_TYPES.items():
        if path.endswith(extension):
            return content_type
    return CONTENT_TYPES.get(output_format or "", "application/octet-stream")


def parse_progress(logs: Any) -> float | None:
    """The last percentage of MusicGen's progress bar, as 0-1."""
    if not isinstance(logs, str):
        return None
    found = _PROGRESS.findall(logs)
    return min(int(found[-1]), 100) / 100.0 if found else None
