"""Translation between the gateway's music types and fal.ai's queue API: pure, no I/O.

fal serves every model behind one queue protocol (submit, status, result, cancel), but each model
has its own input and output JSON. This module owns the per-model-family input mapping and the
reading of queue answers and results; the adapter in ``providers.fal`` moves the bytes and
classifies fal's error answers.

Model families, with the input fields each model's page on fal.ai documents:

- ``fal-ai/stable-audio`` (Stable Audio Open): prompt, seconds_total (whole seconds, 0-47);
  it takes no seed, so a requested seed is dropped.
- ``fal-ai/stable-audio-25/text-to-audio``: prompt, seconds_total (1-190), seed.
- ``fal-ai/ace-step``: tags (our prompt), lyrics, duration (5-240 s), seed.
- ``fal-ai/ace-step/prompt-to-audio``: prompt, instrumental, duration (5-240 s), seed.
- ``fal-ai/ace-step/audio-to-audio`` (remix): audio_url (the reference), edit_mode "remix", tags,
  original_tags (the prompt unless the operator's defaults give them), lyrics, seed. The result
  is as long as the reference, so no duration is sent; a remix strength has no field here.
- Any other id: prompt, duration, seed (the "generic" family), unless the operator maps the id
  to one of the families above.

Results carry the file as ``{"audio_file": File}`` (Stable Audio Open) or ``{"audio": File}``
(Stable Audio 2.5, ACE-Step); ``File`` is ``{url, content_type, file_name, file_size}``.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from providers.base import UpstreamError
from providers.hosted.fal_api import json_object, parse_submit_urls
from providers.music.base import MusicJob, MusicOutput, MusicRequest, MusicState


@dataclass(frozen=True, slots=True)
class ModelFamily:
    """Where a family of fal models takes each part of a ``MusicRequest``."""

    name: str
    prompt_field: str
    duration_field: str | None  # None: the model picks the length (e.g. that of the reference)
    min_seconds: float = 0.0
    max_seconds: float = math.inf
    whole_seconds: bool = False  # the duration field is an integer
    seed_field: str | None = "seed"
    lyrics_field: str | None = None
    instrumental_field: str | None = None  # a boolean switch; without it, lyrics "[instrumental]"
    reference_field: str | None = None  # set: the model transforms a reference (and needs one)
    reference_tags_field: str | None = None  # what the reference sounds like (ACE-Step remix)
    fixed: tuple[tuple[str, Any], ...] = ()


GENERIC = ModelFamily("generic", prompt_field="prompt", duration_field="duration")
STABLE_AUDIO = ModelFamily(
    "stable-audio",
    prompt_field="prompt",
    duration_field="seconds_total",
    min_seconds=1,
    max_seconds=47,
    whole_seconds=True,
    seed_field=None,
)
STABLE_AUDIO_25 = ModelFamily(
    "stable-audio-25",
    prompt_field="prompt",
    duration_field="seconds_total",
    min_seconds=1,
    max_seconds=190,
    whole_seconds=True,
)
ACE_STEP = ModelFamily(
    "ace-step",
    prompt_field="tags",
    duration_field="duration",
    min_seconds=5,
    max_seconds=240,
    lyrics_field="lyrics",
)
ACE_STEP_PROMPT = ModelFamily(
    "ace-step-prompt",
    prompt_field="prompt",
    duration_field="duration",
    min_seconds=5,
    max_seconds=240,
    instrumental_field="instrumental",
)
ACE_STEP_REMIX = ModelFamily(
    "ace-step-remix",
    prompt_field="tags",
    duration_field=None,
    lyrics_field="lyrics",
    reference_field="audio_url",
    reference_tags_field="original_tags",
    fixed=(("edit_mode", "remix"),),
)

FAMILIES: dict[str, ModelFamily] = {
    f.name: f
    for f in (GENERIC, STABLE_AUDIO, STABLE_AUDIO_25, ACE_STEP, ACE_STEP_PROMPT, ACE_STEP_REMIX)
}
KNOWN_MODELS: dict[str, ModelFamily] = {
    "fal-ai/stable-audio": STABLE_AUDIO,
    "fal-ai/stable-audio-25/text-to-audio": STABLE_AUDIO_25,
    "fal-ai/ace-step": ACE_STEP,
    "fal-ai/ace-step/prompt-to-audio": ACE_STEP_PROMPT,
    "fal-ai/ace-step/audio-to-audio": ACE_STEP_REMIX,
}

# fal's queue states; COMPLETED means "finished", successfully or not: the result tells which.
QUEUE_STATES: dict[str, MusicState] = {"IN_QUEUE": "queued", "IN_PROGRESS": "running"}
AUDIO_TYPES_BY_SUFFIX = {
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
}
AUDIO_TYPE_ALIASES = {
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/mp3": "audio/mpeg",
}
DEFAULT_AUDIO_TYPE = "audio/wav"


def family_for(model_id: str, overrides: Mapping[str, str]) -> ModelFamily:
    """The family of a model id: the operator's mapping, then the known ids, then generic."""
    name = overrides.get(model_id)
    if name is not None:
        return FAMILIES[name]
    return KNOWN_MODELS.get(model_id, GENERIC)


def validate_request(request: MusicRequest, family: ModelFamily) -> None:
    """Refuse what the model cannot take, before any reference is read or sent."""
    model = request.upstream_model
    if request.reference is not None and family.reference_field is None:
        raise UpstreamError("client_error", f"Model {model} takes no reference audio.")
    if request.reference is None and family.reference_field is not None:
        raise UpstreamError("client_error", f"Model {model} needs a reference recording.")
    if request.lyrics and not request.instrumental and family.lyrics_field is None:
        raise UpstreamError("client_error", f"Model {model} does not take lyrics.")
    if family.duration_field is not None:
        seconds = _seconds(request.duration_seconds, family)
        if not family.min_seconds <= seconds <= family.max_seconds:
            raise UpstreamError(
                "client_error",
                f"Model {model} makes between {family.min_seconds:g} and "
                f"{family.max_seconds:g} seconds of audio.",
            )


def build_input(
    request: MusicRequest,
    family: ModelFamily,
    reference_uri: str | None,
    defaults: Mapping[str, Any],
) -> dict[str, Any]:
    """The model's input JSON: the operator's defaults, overridden by what the request says."""
    validate_request(request, family)
    body: dict[str, Any] = dict(defaults)
    body.update(family.fixed)
    body[family.prompt_field] = request.prompt
    if family.duration_field is not None:
        body[family.duration_field] = _seconds(request.duration_seconds, family)
    if family.seed_field is not None and request.seed is not None:
        body[family.seed_field] = request.seed
    if request.instrumental:
        if family.instrumental_field is not None:
            body[family.instrumental_field] = True
        elif family.lyrics_field is not None:
            # ACE-Step sings nothing when the lyrics are this marker.
            body[family.lyrics_field] = "[instrumental]"
    elif request.lyrics and family.lyrics_field is not None:
        body[family.lyrics_field] = request.lyrics
    if family.reference_field is not None and reference_uri is not None:
        body[family.reference_field] = reference_uri
        if family.reference_tags_field is not None:
            # ACE-Step requires tags describing the reference; we have none of our own, so the
            # prompt stands in unless the operator's defaults say something better.
            body.setdefault(family.reference_tags_field, request.prompt)
    return body


def _seconds(duration: float, family: ModelFamily) -> float | int:
    return round(duration) if family.whole_seconds else duration


def parse_submit(raw: bytes) -> MusicJob:
    """The submit answer: the request id and the URLs to use for everything that follows."""
    request_id, urls = parse_submit_urls(raw)
    return MusicJob(job_id=request_id, data=dict(urls))


def job_url(job: MusicJob, key: str) -> str:
    """One of the URLs fal returned at submit, as kept in the task record."""
    url = job.data.get(key)
    if not isinstance(url, str) or not url:
        raise UpstreamError("server", f"The job record has no {key}.")
    return url


def parse_result(raw: bytes) -> tuple[MusicOutput, ...]:
    """The audio files of a successful result (``audio_file`` or ``audio``, one or a list)."""
    data = json_object(raw, "result")
    files: list[Any] = []
    for key in ("audio_file", "audio"):
        value = data.get(key)
        files.extend(value if isinstance(value, list) else [value] if value is not None else [])
    outputs = tuple(_output(item) for item in files)
    if not outputs:
        raise UpstreamError("server", "The provider's result held no audio file.")
    return outputs


def _output(item: Any) -> MusicOutput:
    url = item.get("url") if isinstance(item, dict) else None
    if not isinstance(url, str) or not url:
        raise UpstreamError("server", "The provider's result held an audio file without a URL.")
    content_type = audio_content_type(item)
    if url.startswith("data:"):
        # Models run with sync_mode answer with the file inline.
        header, _, payload = url.partition(",")
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise UpstreamError("server", "The provider's inline audio was not base64.") from exc
        if not header.endswith(";base64"):
            raise UpstreamError("server", "The provider's inline audio was not base64.")
        return MusicOutput(content_type=content_type, data=data)
    return MusicOutput(content_type=content_type, url=url)


def audio_content_type(file: Mapping[str, Any]) -> str:
    """The file's own audio type, else one guessed from its name, else WAV (what these make)."""
    declared = file.get("content_type")
    if isinstance(declared, str) and declared.startswith("audio/"):
        return AUDIO_TYPE_ALIASES.get(declared, declared)
    name = str(file.get("file_name") or str(file.get("url", "")).split("?")[0])
    return AUDIO_TYPES_BY_SUFFIX.get(PurePosixPath(name).suffix.lower(), DEFAULT_AUDIO_TYPE)
