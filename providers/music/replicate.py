"""Music adapter for Replicate-hosted MusicGen (``meta/musicgen``): predictions, files, outputs.

It owns the music side of the I/O: passing the reference recording (inline as a data URL up to
256 KiB, as Replicate recommends, else uploaded with ``POST /v1/files``) and MusicGen's options.
Predictions themselves (the token, create, poll, cancel, downloads) go through
``providers.hosted.replicate_api.ReplicateApi``; the wire translation is pure and lives in
``providers.music.replicate_wire``.

MusicGen makes instrumentals only: ``supports_lyrics`` is False, so the gateway must refuse
requests with lyrics for this adapter (the adapter refuses them too, as ``client_error``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import ClassVar

from providers.base import ProviderSettings, read_options
from providers.hosted.replicate_api import (
    ReplicateApi,
    data_url,
    error_from_response,
    parse_model_ref,
)
from providers.http.values import FormFile, UpstreamOptions
from providers.music.base import MusicJob, MusicOutput, MusicRequest, MusicStatus, ReferenceAudio
from providers.music.replicate_wire import (
    DEFAULT_MODEL_VERSION,
    INLINE_REFERENCE_MAX_BYTES,
    MusicgenConfig,
    build_input,
    check_request,
    job_from_prediction,
    status_from_prediction,
    uploaded_file_url,
)

DEFAULT_MAX_DURATION_SECONDS = 30.0  # MusicGen's own limit on Replicate


@dataclasses.dataclass(frozen=True, slots=True)
class ReplicateOptions(UpstreamOptions):
    """The options of the ``replicate`` kind."""

    max_duration_seconds: float = DEFAULT_MAX_DURATION_SECONDS
    model_version: str = DEFAULT_MODEL_VERSION
    melody_model_version: str = DEFAULT_MODEL_VERSION
    normalization_strategy: str | None = None  # None: the model's default (loudness)
    # MusicGen's sampling inputs (SAMPLING_OPTIONS); None: the model's default.
    top_k: int | None = None
    top_p: float | None = None
    temperature: float | None = None
    classifier_free_guidance: float | None = None
    inline_reference_max_bytes: int = INLINE_REFERENCE_MAX_BYTES


class ReplicateMusicAdapter:
    """MusicGen through Replicate's predictions API; ``base_url`` is the host root."""

    kind = "replicate"
    formats: frozenset[str] = frozenset({"wav", "mp3"})
    reference_modes: frozenset[str] = frozenset({"melody", "continuation"})
    supports_lyrics: bool = False
    max_duration_seconds: float = DEFAULT_MAX_DURATION_SECONDS
    needs_base_url: ClassVar[bool] = True
    Options: ClassVar[type[ReplicateOptions]] = ReplicateOptions

    def __init__(self, settings: ProviderSettings) -> None:
        options = read_options(self.Options, settings.options)
        self._api = ReplicateApi(settings, options)
        self.max_duration_seconds = float(options.max_duration_seconds)
        self._config = MusicgenConfig.from_options(dataclasses.asdict(options))
        self._inline_max_bytes = options.inline_reference_max_bytes

    async def start(self) -> None:
        await self._api.start()

    async def close(self) -> None:
        await self._api.close()

    async def submit(self, request: MusicRequest) -> MusicJob:
        check_request(request)
        ref = parse_model_ref(request.upstream_model)
        reference_url = None
        if request.reference is not None:
            reference_url = await self._reference_url(request.reference)
        model_input = build_input(request, self._config, reference_url)
        prediction = await self._api.create(ref, model_input, request.request_id)
        return job_from_prediction(
            prediction, request.format, self._api.prefix, self._api.http.scrubber
        )

    async def poll(self, job: MusicJob) -> MusicStatus:
        prediction = await self._api.get(job.data.get("get"), job.job_id)
        output_format = job.data.get("format")
        return status_from_prediction(
            prediction,
            output_format if isinstance(output_format, str) else None,
            self._api.http.scrubber,
        )

    async def cancel(self, job: MusicJob) -> None:
        await self._api.cancel(job.data.get("cancel"), job.job_id)

    async def download(self, output: MusicOutput) -> AsyncIterator[bytes]:
        if output.data is not None:
            yield output.data
            return
        if not output.url:
            return
        async for chunk in self._api.download(output.url):
            yield chunk

    async def _reference_url(self, reference: ReferenceAudio) -> str:
        if reference.size <= self._inline_max_bytes:
            content = await asyncio.to_thread(reference.path.read_bytes)
            return data_url(reference.content_type, content)
        reply = await self._api.http.send(
            "POST",
            f"{self._api.prefix}/files",
            error_from_response,
            headers=self._api.auth,
            files=[FormFile("content", reference.path, reference.filename, reference.content_type)],
        )
        return uploaded_file_url(reply.body)
