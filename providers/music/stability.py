"""Music adapter for Stability AI's Stable Audio 2 API (text-to-audio and audio-to-audio).

Stable Audio answers synchronously: one multipart ``POST`` returns the finished audio bytes
(``accept: audio/*``). So ``submit`` makes the whole call and returns a job whose ``done`` is
already set, and the runner never polls it: sync behind async. The API has no job id, no status
call and no cancel call; the runner cancels a generation by cancelling the in-flight request.

The synchronous call is bounded by the provider's timeouts: a generation takes tens of seconds
before the first byte, so ``read_timeout`` must exceed the slowest generation (180 s is a safe
setting for 190-second tracks) and ``total_timeout`` bounds the whole call (300 s recommended).

Translation (the form fields, the answer, error bodies) is pure; I/O goes through
``HttpUpstream``.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import ClassVar

from providers.base import ProviderSettings, UpstreamError, read_options
from providers.http.upstream import DOWNLOAD_CHUNK_BYTES, HttpUpstream
from providers.http.values import FormFile, UpstreamOptions
from providers.music.base import MusicJob, MusicOutput, MusicRequest, MusicStatus
from providers.shared_wire import (
    STABILITY_FINISH_FILTERED,
    STABILITY_FINISH_SUCCESS,
    check_stability_reply,
    stability_error,
    stability_headers,
)

DEFAULT_API_PATH = "/v2beta/audio/stable-audio-2"
TEXT_TO_AUDIO = "/text-to-audio"
AUDIO_TO_AUDIO = "/audio-to-audio"
MAX_DURATION_SECONDS = 190.0
# A 190-second track as 44.1 kHz stereo WAV is about 33 MB, above the shared 32 MiB default.
DEFAULT_MAX_RESPONSE_BYTES = 128 * 1024 * 1024
FINISH_SUCCESS = STABILITY_FINISH_SUCCESS
FINISH_FILTERED = STABILITY_FINISH_FILTERED
# Stability's error bodies, classified as for its image adapter.
error_from_response = stability_error
LOST_ON_RESTART = (
    "The Stability generation was lost when the gateway restarted; its audio only ever lived in "
    "the answer to the original request."
)


def endpoint_path(request: MusicRequest, api_path: str = DEFAULT_API_PATH) -> str:
    """Audio-to-audio when the request carries a reference recording, text-to-audio otherwise."""
    return api_path.rstrip("/") + (AUDIO_TO_AUDIO if request.reference else TEXT_TO_AUDIO)


def format_number(value: float) -> str:
    """A form value without a needless ``.0`` (``30`` rather than ``30.0``)."""
    return f"{value:g}"


def build_form(
    request: MusicRequest,
    *,
    steps: int | None = None,
    cfg_scale: float | None = None,
    default_strength: float | None = None,
) -> list[tuple[str, str]]:
    """The multipart text fields; unset knobs are left out so Stability's defaults apply."""
    if request.lyrics:
        raise UpstreamError("client_error", "Stable Audio does not take lyrics.")
    if request.reference is not None and request.reference.mode != "remix":
        raise UpstreamError(
            "client_error", "Stable Audio only transforms a reference recording (remix)."
        )
    form = [
        ("prompt", request.prompt),
        ("duration", format_number(request.duration_seconds)),
        ("output_format", request.format),
    ]
    if request.upstream_model:
        form.append(("model", request.upstream_model))
    if request.seed is not None:
        form.append(("seed", str(request.seed)))
    if steps is not None:
        form.append(("steps", str(steps)))
    if cfg_scale is not None:
        form.append(("cfg_scale", format_number(cfg_scale)))
    if request.reference is not None:
        strength = request.reference.strength
        if strength is None:
            strength = default_strength
        if strength is not None:
            form.append(("strength", format_number(strength)))
    return form


def reference_files(request: MusicRequest) -> list[FormFile]:
    """The reference recording as the ``audio`` file part, streamed from disk by the client."""
    ref = request.reference
    if ref is None:
        return []
    return [FormFile("audio", ref.path, ref.filename, ref.content_type)]


def parse_audio_reply(
    headers: Mapping[str, str], body: bytes, duration_seconds: float | None
) -> MusicOutput:
    """Check a 200 answer really is audio and turn it into the job's one output."""
    content_type = check_stability_reply(
        headers, "audio", finished="the generation", missing="audio"
    )
    if not body:
        raise UpstreamError("server", "The provider returned an empty audio file.")
    return MusicOutput(content_type, data=body, duration_seconds=duration_seconds)


@dataclasses.dataclass(frozen=True, slots=True)
class StabilityOptions(UpstreamOptions):
    """The options of the ``stability`` kind."""

    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES  # whole tracks come in the answer
    max_duration_seconds: float = MAX_DURATION_SECONDS
    api_path: str = DEFAULT_API_PATH
    steps: int | None = None  # None: the API's default
    cfg_scale: float | None = None
    default_strength: float | None = None


class StabilityMusicAdapter:
    """Music through Stable Audio 2; ``base_url`` is the host root (``https://api.stability.ai``)."""

    kind = "stability"
    formats: frozenset[str] = frozenset({"mp3", "wav"})
    reference_modes: frozenset[str] = frozenset({"remix"})
    max_duration_seconds: float = MAX_DURATION_SECONDS
    supports_lyrics = False
    needs_base_url: ClassVar[bool] = True
    Options: ClassVar[type[StabilityOptions]] = StabilityOptions

    def __init__(self, settings: ProviderSettings) -> None:
        options = read_options(self.Options, settings.options)
        self.max_duration_seconds = float(options.max_duration_seconds)
        self._api_path = options.api_path
        self._steps = options.steps
        self._cfg_scale = options.cfg_scale
        self._default_strength = options.default_strength
        headers = stability_headers("audio/*", settings.api_key)
        self._http = HttpUpstream(settings, headers, options)

    async def start(self) -> None:
        await self._http.start()

    async def close(self) -> None:
        await self._http.close()

    async def submit(self, request: MusicRequest) -> MusicJob:
        form = build_form(
            request,
            steps=self._steps,
            cfg_scale=self._cfg_scale,
            default_strength=self._default_strength,
        )
        reply = await self._http.send(
            "POST",
            endpoint_path(request, self._api_path),
            error_from_response,
            form=form,
            files=reference_files(request),
        )
        output = parse_audio_reply(reply.headers, reply.body, request.duration_seconds)
        done = MusicStatus("succeeded", progress=1.0, outputs=(output,))
        # Stability gives the generation no id of its own; ours only names it in the record.
        return MusicJob(job_id=f"stability-{uuid.uuid4().hex}", data={}, done=done)

    async def poll(self, job: MusicJob) -> MusicStatus:
        if job.done is not None:
            return job.done
        # Only a job restored from its record lacks ``done``; there is nothing to ask Stability.
        return MusicStatus("failed", error=UpstreamError("server", LOST_ON_RESTART))

    async def cancel(self, job: MusicJob) -> None:
        """Nothing to call: the runner stops a generation by cancelling the in-flight request."""

    async def download(self, output: MusicOutput) -> AsyncIterator[bytes]:
        if output.data is None:
            raise UpstreamError("server", "The Stability output carries no audio bytes.")
        for start in range(0, len(output.data), DOWNLOAD_CHUNK_BYTES):
            yield output.data[start : start + DOWNLOAD_CHUNK_BYTES]
