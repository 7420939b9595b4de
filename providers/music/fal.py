"""Music adapter for fal.ai's queue API (``https://queue.fal.run``).

It owns the music side of a fal job: reading a reference recording into a data URI, and turning
the result URL's answer into the job's outcome. The queue protocol itself (the key, submit,
status, result, cancel, downloads and fal's error answers) is ``providers.hosted.fal_api``,
shared with the image adapter. Model inputs and results are translated by the pure functions
of ``providers.music.fal_wire``.

Capabilities are per adapter, while inputs differ per model: the class advertises what the
mapped models can do together (remix, lyrics) and ``submit`` refuses, as ``client_error``, what
the request's own model cannot take. Operators serving only text models can narrow the
advertised capabilities with options, so the gateway rejects such requests up front.

Options (``ProviderSettings.options``):
    ``input_defaults``        dict merged into every model input (request values win), e.g.
                              ``{"steps": 50}`` or ACE-Step's ``original_tags``; default ``{}``
    ``model_families``        dict of model id -> family name for ids this module does not know
                              (see ``providers.fal_wire.FAMILIES``); default ``{}``
    ``max_duration_seconds``  advertised limit; default 47 (Stable Audio Open's)
    ``supports_lyrics``       advertised; default True (ACE-Step takes lyrics)
    ``reference_modes``       advertised; default ``["remix"]`` (ACE-Step audio-to-audio)
    ``max_reference_bytes``   largest reference sent inline; default 16 MiB
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

from providers.base import ProviderSettings, UpstreamError, read_options
from providers.hosted.fal_api import (
    FalQueue,
    classify_result_error,
    data_uri,
    parse_queue_status,
)
from providers.http.framing import parse_retry_after
from providers.http.values import UpstreamOptions
from providers.music.base import (
    MusicJob,
    MusicOutput,
    MusicRequest,
    MusicStatus,
    ReferenceAudio,
)
from providers.music.fal_wire import (
    FAMILIES,
    QUEUE_STATES,
    ModelFamily,
    build_input,
    family_for,
    job_url,
    parse_result,
    parse_submit,
    validate_request,
)
from providers.scrub import STRUCTURAL, Scrubber

DEFAULT_MAX_DURATION_SECONDS = 47.0
# Data URIs travel inside the JSON body; fal warns they slow large requests down.
DEFAULT_MAX_REFERENCE_BYTES = 16 * 1024 * 1024
SUPPORTED_REFERENCE_MODES = frozenset({"remix"})


class JobFailedError(UpstreamError):
    """A result fetch that answered with the job's own failure (not a failure of the poll)."""

    def __init__(self, outcome: MusicStatus) -> None:
        error = outcome.error
        super().__init__(
            error.kind if error else "server",
            error.message if error else "The job was canceled.",
            status=error.status if error else None,
        )
        self.outcome = outcome


def result_error(
    status: int, body: bytes, headers: Mapping[str, str], scrubber: Scrubber = STRUCTURAL
) -> UpstreamError:
    """A non-2xx answer from the result URL: the job's own failure (``JobFailedError``), or a
    failure of this poll, which the runner may retry (see ``classify_result_error``)."""
    outcome, error = classify_result_error(status, body, headers, scrubber)
    if outcome == "canceled":
        return JobFailedError(MusicStatus("canceled"))
    if outcome == "failed":
        return JobFailedError(MusicStatus("failed", error=error))
    return error


@dataclasses.dataclass(frozen=True, slots=True)
class FalOptions(UpstreamOptions):
    """The options of the ``fal`` kind (listed in the module docstring)."""

    input_defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    model_families: Mapping[str, str] = dataclasses.field(default_factory=dict)
    max_duration_seconds: float = DEFAULT_MAX_DURATION_SECONDS
    supports_lyrics: bool = True
    reference_modes: tuple[str, ...] = ("remix",)
    max_reference_bytes: int = DEFAULT_MAX_REFERENCE_BYTES


class FalMusicAdapter:
    """Music generation through fal's queue; ``upstream_model`` is the fal model id."""

    kind = "fal"
    formats: frozenset[str] = frozenset({"wav"})
    reference_modes: frozenset[str] = frozenset({"remix"})
    supports_lyrics: bool = True
    max_duration_seconds: float = DEFAULT_MAX_DURATION_SECONDS
    needs_base_url: ClassVar[bool] = True
    Options: ClassVar[type[FalOptions]] = FalOptions

    def __init__(self, settings: ProviderSettings) -> None:
        options = read_options(self.Options, settings.options)
        self._queue = FalQueue(settings, options)
        self._input_defaults = dict(options.input_defaults)
        self._families = dict(options.model_families)
        unknown = set(self._families.values()) - set(FAMILIES)
        if unknown:
            raise ValueError(f"fal: unknown model families {sorted(unknown)}")
        self.max_duration_seconds = float(options.max_duration_seconds)
        self.supports_lyrics = options.supports_lyrics
        self.reference_modes = frozenset(options.reference_modes)
        if not self.reference_modes <= SUPPORTED_REFERENCE_MODES:
            raise ValueError("fal: the only reference mode the mapped models take is 'remix'")
        self._max_reference_bytes = options.max_reference_bytes

    async def start(self) -> None:
        await self._queue.start()

    async def close(self) -> None:
        await self._queue.close()

    def family(self, model_id: str) -> ModelFamily:
        return family_for(model_id, self._families)

    async def submit(self, request: MusicRequest) -> MusicJob:
        family = self.family(request.upstream_model)
        validate_request(request, family)
        reference_uri = None
        if request.reference is not None:
            reference_uri = await self._reference_uri(request.reference)
        payload = build_input(request, family, reference_uri, self._input_defaults)
        reply = await self._queue.submit(request.upstream_model, payload)
        return parse_submit(reply.body)

    async def poll(self, job: MusicJob) -> MusicStatus:
        reply = await self._queue.status(job_url(job, "status_url"))
        state = parse_queue_status(reply.body)
        if state in QUEUE_STATES:
            return MusicStatus(QUEUE_STATES[state], retry_after=parse_retry_after(reply.headers))
        try:
            result = await self._queue.http.send(
                "GET", job_url(job, "response_url"), result_error, headers=self._queue.auth
            )
        except JobFailedError as failure:
            return failure.outcome
        return MusicStatus("succeeded", outputs=parse_result(result.body))

    async def cancel(self, job: MusicJob) -> None:
        await self._queue.cancel(job_url(job, "cancel_url"))

    async def download(self, output: MusicOutput) -> AsyncIterator[bytes]:
        if output.data is not None:
            yield output.data
            return
        if not output.url:
            raise UpstreamError("server", "The provider's output had neither bytes nor a URL.")
        async for chunk in self._queue.download(output.url):
            yield chunk

    async def _reference_uri(self, reference: ReferenceAudio) -> str:
        if reference.size > self._max_reference_bytes:
            raise UpstreamError(
                "client_error",
                f"The reference recording is larger than {self._max_reference_bytes} bytes.",
            )
        try:
            data = await asyncio.to_thread(reference.path.read_bytes)
        except OSError as exc:
            raise UpstreamError("server", "The reference recording could not be read.") from exc
        return data_uri(reference.content_type, data)
