"""Music adapter for Replicate-hosted MusicGen (``meta/musicgen``): predictions, files, outputs.

It owns the I/O side, all through ``HttpUpstream``: the bearer token, passing the reference
recording (inline as a data URL up to 256 KiB, as Replicate recommends, else uploaded with
``POST /v1/files``), creating, polling and canceling the prediction, and fetching the output.
The wire translation is pure and lives in ``providers.replicate_wire``.

MusicGen makes instrumentals only: ``supports_lyrics`` is False, so the gateway must refuse
requests with lyrics for this adapter (the adapter refuses them too, as ``client_error``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import ClassVar
from urllib.parse import urlsplit

from providers.base import ProviderSettings, read_options
from providers.http.upstream import HttpUpstream
from providers.http.values import FormFile, UpstreamOptions
from providers.music.base import MusicJob, MusicOutput, MusicRequest, MusicStatus, ReferenceAudio
from providers.music.replicate_wire import (
    DEFAULT_MODEL_VERSION,
    INLINE_REFERENCE_MAX_BYTES,
    MusicgenConfig,
    build_input,
    check_request,
    create_request,
    data_url,
    download_error,
    error_from_response,
    job_from_prediction,
    parse_model_ref,
    parse_prediction,
    status_from_prediction,
    uploaded_file_url,
)

DEFAULT_BASE_URL = "https://api.replicate.com"
DEFAULT_MAX_DURATION_SECONDS = 30.0  # MusicGen's own limit on Replicate


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


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
        base_url = (settings.base_url or DEFAULT_BASE_URL).rstrip("/")
        # The token goes on each request rather than on the session, so that it is only ever
        # sent to the API's own host, never to a file host named in an output URL.
        self._http = HttpUpstream(dataclasses.replace(settings, base_url=base_url), {}, options)
        self._auth = {"authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        self._api_origin = _origin(base_url)
        self._prefix = "" if base_url.endswith("/v1") else "/v1"
        self.max_duration_seconds = float(options.max_duration_seconds)
        self._config = MusicgenConfig.from_options(dataclasses.asdict(options))
        self._inline_max_bytes = options.inline_reference_max_bytes

    async def start(self) -> None:
        await self._http.start()

    async def close(self) -> None:
        await self._http.close()

    async def submit(self, request: MusicRequest) -> MusicJob:
        check_request(request)
        ref = parse_model_ref(request.upstream_model)
        reference_url = None
        if request.reference is not None:
            reference_url = await self._reference_url(request.reference)
        model_input = build_input(request, self._config, reference_url)
        path, payload = create_request(ref, model_input, self._prefix)
        reply = await self._http.send(
            "POST",
            path,
            error_from_response,
            payload=payload,
            headers={**self._auth, "x-request-id": request.request_id},
        )
        return job_from_prediction(
            parse_prediction(reply.body), request.format, self._prefix, self._http.scrubber
        )

    async def poll(self, job: MusicJob) -> MusicStatus:
        target = self._api_target(job.data.get("get"), f"/predictions/{job.job_id}")
        reply = await self._http.send("GET", target, error_from_response, headers=self._auth)
        output_format = job.data.get("format")
        return status_from_prediction(
            parse_prediction(reply.body),
            output_format if isinstance(output_format, str) else None,
            self._http.scrubber,
        )

    async def cancel(self, job: MusicJob) -> None:
        target = self._api_target(job.data.get("cancel"), f"/predictions/{job.job_id}/cancel")
        await self._http.send("POST", target, error_from_response, headers=self._auth)

    async def download(self, output: MusicOutput) -> AsyncIterator[bytes]:
        if output.data is not None:
            yield output.data
            return
        if not output.url:
            return
        # Files served by the API itself need the token; signed delivery URLs must not see it.
        headers = self._auth if _origin(output.url) == self._api_origin else {}
        async for chunk in self._http.download(output.url, download_error, headers):
            yield chunk

    async def _reference_url(self, reference: ReferenceAudio) -> str:
        if reference.size <= self._inline_max_bytes:
            content = await asyncio.to_thread(reference.path.read_bytes)
            return data_url(reference.content_type, content)
        reply = await self._http.send(
            "POST",
            f"{self._prefix}/files",
            error_from_response,
            headers=self._auth,
            files=[FormFile("content", reference.path, reference.filename, reference.content_type)],
        )
        return uploaded_file_url(reply.body)

    def _api_target(self, url: object, fallback_path: str) -> str:
        """A URL Replicate returned when it is on the API's host, else the documented path.

        The fallback keeps the token on the configured host (e.g. behind an egress proxy).
        """
        relative = isinstance(url, str) and not url.startswith(("http://", "https://"))
        if isinstance(url, str) and url and (relative or _origin(url) == self._api_origin):
            return url
        return self._prefix + fallback_path
