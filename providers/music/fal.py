"""Music adapter for fal.ai's queue API (``https://queue.fal.run``).

It owns the I/O side of a fal job: the ``Authorization: Key ...`` header, submitting the model's
input to ``POST {base_url}/{model_id}``, polling the ``status_url`` and fetching the
``response_url`` that the submit answer returned (never rebuilt: fal drops the model's sub-path
from them), ``PUT`` on the ``cancel_url``, reading a reference recording into a data URI and
downloading output files. It also owns the classification of fal's error answers: pure
functions, kept next to the calls they serve. Model inputs and results are translated by the
pure functions of ``providers.fal_wire``.

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

import orjson

from providers.base import ProviderSettings, UpstreamError, classify_status, read_options
from providers.http.framing import parse_retry_after
from providers.http.upstream import HttpUpstream
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
    data_uri,
    family_for,
    job_url,
    parse_queue_status,
    parse_result,
    parse_submit,
    validate_request,
)
from providers.scrub import STRUCTURAL, Scrubber

DEFAULT_BASE_URL = "https://queue.fal.run"
DEFAULT_MAX_DURATION_SECONDS = 47.0
# Data URIs travel inside the JSON body; fal warns they slow large requests down.
DEFAULT_MAX_REFERENCE_BYTES = 16 * 1024 * 1024
SUPPORTED_REFERENCE_MODES = frozenset({"remix"})


# The error_type fal gives a request its caller canceled (HTTP 499).
CANCELED_ERROR_TYPES = frozenset({"client_cancelled"})


def error_detail(body: bytes, scrubber: Scrubber = STRUCTURAL) -> tuple[str, str | None, bool]:
    """fal's error body read: (clean message, error_type, whether it was fal's JSON shape).

    Model errors (validation, content policy) carry ``detail`` as a list of
    ``{loc, msg, type, url}``; request errors (timeouts, runner failures) carry it as a string
    next to ``error_type``.
    """
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "", None, False
    if not isinstance(data, dict) or "detail" not in data:
        return "", None, False
    detail = data["detail"]
    error_type = data.get("error_type")
    if isinstance(detail, str):
        message = detail
    elif isinstance(detail, list):
        message = "; ".join(_item_message(item) for item in detail if isinstance(item, dict))
    else:
        message = ""
    return scrubber.clean(message), error_type if isinstance(error_type, str) else None, True


def _item_message(item: Mapping[str, Any]) -> str:
    loc = item.get("loc")
    where = ".".join(str(p) for p in loc if p != "body") if isinstance(loc, list) else ""
    text = str(item.get("msg") or item.get("type") or "invalid input")
    return f"{where}: {text}" if where else text


def error_from_response(
    status: int, body: bytes, headers: Mapping[str, str], scrubber: Scrubber = STRUCTURAL
) -> UpstreamError:
    """A non-2xx answer from submit, status or cancel as an ``UpstreamError``."""
    message, _, _ = error_detail(body, scrubber)
    return classify_status(status, message, parse_retry_after(headers))


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
    """A non-2xx answer from the result URL.

    fal answers the result URL with the model's own error when the job failed; that is the job's
    outcome (``JobFailedError``). Credentials, rate limits and bare gateway errors (an HTML 502
    from the ingress) are failures of this poll, which the runner may retry.
    """
    if status in (401, 403, 429):
        return error_from_response(status, body, headers, scrubber)
    message, error_type, fal_body = error_detail(body, scrubber)
    if status == 499 or error_type in CANCELED_ERROR_TYPES:
        return JobFailedError(MusicStatus("canceled"))
    if status in (404, 410):
        lost = UpstreamError(
            "server", "The provider no longer holds the job's result.", status=status
        )
        return JobFailedError(MusicStatus("failed", error=lost))
    if status >= 500 and not fal_body:
        return error_from_response(status, body, headers, scrubber)
    error = classify_status(status, message, parse_retry_after(headers))
    if error.kind in ("server", "timeout") and message:
        error = UpstreamError(error.kind, f"The provider's job failed: {message}", status=status)
    return JobFailedError(MusicStatus("failed", error=error))


def file_error(
    status: int, body: bytes, headers: Mapping[str, str], scrubber: Scrubber = STRUCTURAL
) -> UpstreamError:
    """A non-2xx answer from an output file URL: fal's file URLs expire."""
    if status in (403, 404, 410):
        return UpstreamError(
            "server", "The provider's result URL expired before it was downloaded.", status=status
        )
    return classify_status(status, "", parse_retry_after(headers))


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
        if not settings.base_url:
            settings = dataclasses.replace(settings, base_url=DEFAULT_BASE_URL)
        # Sent per request, not as a pooled-client default: output files live on a public CDN.
        self._auth = {"authorization": f"Key {settings.api_key}"} if settings.api_key else {}
        self._http = HttpUpstream(settings, {}, options)
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
        await self._http.start()

    async def close(self) -> None:
        await self._http.close()

    def family(self, model_id: str) -> ModelFamily:
        return family_for(model_id, self._families)

    async def submit(self, request: MusicRequest) -> MusicJob:
        family = self.family(request.upstream_model)
        validate_request(request, family)
        reference_uri = None
        if request.reference is not None:
            reference_uri = await self._reference_uri(request.reference)
        payload = build_input(request, family, reference_uri, self._input_defaults)
        reply = await self._http.send(
            "POST",
            "/" + request.upstream_model.strip("/"),
            error_from_response,
            payload=orjson.dumps(payload),
            headers=self._auth,
        )
        return parse_submit(reply.body)

    async def poll(self, job: MusicJob) -> MusicStatus:
        reply = await self._http.send(
            "GET", job_url(job, "status_url"), error_from_response, headers=self._auth
        )
        state = parse_queue_status(reply.body)
        if state in QUEUE_STATES:
            return MusicStatus(QUEUE_STATES[state], retry_after=parse_retry_after(reply.headers))
        try:
            result = await self._http.send(
                "GET", job_url(job, "response_url"), result_error, headers=self._auth
            )
        except JobFailedError as failure:
            return failure.outcome
        return MusicStatus("succeeded", outputs=parse_result(result.body))

    async def cancel(self, job: MusicJob) -> None:
        try:
            await self._http.send(
                "PUT", job_url(job, "cancel_url"), error_from_response, headers=self._auth
            )
        except UpstreamError as error:
            # fal answers 400 ALREADY_COMPLETED or 404 NOT_FOUND: nothing is left to stop.
            if error.status in (400, 404):
                return
            raise

    async def download(self, output: MusicOutput) -> AsyncIterator[bytes]:
        if output.data is not None:
            yield output.data
            return
        if not output.url:
            raise UpstreamError("server", "The provider's output had neither bytes nor a URL.")
        async for chunk in self._http.download(output.url, file_error):
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
