"""Replicate's predictions API, shared by the music and image adapters of kind ``replicate``.

Replicate runs a model as a *prediction*: ``POST /v1/models/{owner}/{name}/predictions`` (or
``POST /v1/predictions`` with ``{"version": ...}`` for a pinned version) answers a prediction
object ``{id, status, output, error, logs, urls: {get, cancel}, ...}`` whose ``status`` moves
``starting -> processing -> succeeded | failed | canceled`` (``aborted`` when a deadline passed
before it started). ``Prefer: wait=N`` holds the create call open up to N seconds (1-60) and
answers the prediction as it stands then. Outputs are delivery URLs Replicate deletes after an
hour. Errors are problem+json bodies ``{"title", "detail", "status"}``.

``ReplicateApi`` owns the I/O: the bearer token (only ever sent to the API's own host, never to
a file host named in an output URL), creating, polling and canceling a prediction, and bounded
downloads. The functions around it are pure.
"""

from __future__ import annotations

import base64
import dataclasses
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from providers.base import JSON, ProviderSettings, UpstreamError, classify_status
from providers.http.framing import parse_retry_after
from providers.http.upstream import ErrorMapper, HttpUpstream
from providers.http.values import UpstreamOptions
from providers.scrub import STRUCTURAL, Scrubber

DEFAULT_BASE_URL = "https://api.replicate.com"
PENDING_STATUSES = frozenset({"starting", "processing"})
FINISHED_STATUSES = frozenset({"succeeded", "failed", "canceled", "aborted"})
EXPIRED_STATUSES = frozenset({403, 404, 410})
MAX_PREFER_WAIT_SECONDS = 60  # Replicate's documented ceiling for ``Prefer: wait=N``

_MODEL_REF = re.compile(r"([A-Za-z0-9][\w.-]*)/([A-Za-z0-9][\w.-]*)(?::([0-9A-Za-z]+))?")
# Replicate's throttling body says when to come back even without a Retry-After header.
_THROTTLE_HINT = re.compile(r"(?:available in|resets in) ~?(\d+(?:\.\d+)?) ?s", re.IGNORECASE)
# A model error blames the input only when it both names an input and says what is wrong with
# it; anything else (e.g. "CUDA error: invalid device function") is the provider's failure.
_COMPLAINT = re.compile(
    r"invalid|validation|must be|not supported|unsupported|could not decode|failed to decode"
    r"|too long|too short|out of range|not a valid",
    re.IGNORECASE,
)
_INPUT_NAMED = re.compile(
    r"\binputs?\b|input_audio|prompt|duration|model_version|output_format|audio file|seed",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A catalog ``upstream_model``: ``owner/name`` or ``owner/name:version``."""

    owner: str
    name: str
    version: str | None = None


def parse_model_ref(upstream_model: str) -> ModelRef:
    match = _MODEL_REF.fullmatch(upstream_model.strip())
    if match is None:
        # The operator's catalog is wrong, not the client's request.
        raise UpstreamError("server", "The configured Replicate model is not owner/name[:version].")
    return ModelRef(match.group(1), match.group(2), match.group(3))


def create_request(ref: ModelRef, model_input: JSON, api_prefix: str) -> tuple[str, bytes]:
    """The path and body that create a prediction of ``ref``."""
    if ref.version:
        return f"{api_prefix}/predictions", orjson.dumps(
            {"version": ref.version, "input": model_input}
        )
    path = f"{api_prefix}/models/{ref.owner}/{ref.name}/predictions"
    return path, orjson.dumps({"input": model_input})


def data_url(content_type: str, data: bytes) -> str:
    encoded = base64.b64encode(data).decode()
    return f"data:{content_type or 'application/octet-stream'};base64,{encoded}"


def parse_object(raw: bytes) -> JSON:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError("server", "The provider returned malformed JSON.") from exc
    if not isinstance(data, dict):
        raise UpstreamError("server", "The provider returned an unexpected body.")
    return data


def parse_prediction(raw: bytes) -> JSON:
    data = parse_object(raw)
    if not isinstance(data.get("id"), str) or not isinstance(data.get("status"), str):
        raise UpstreamError("server", "The provider returned a prediction without id or status.")
    return data


def prediction_urls(prediction: JSON, api_prefix: str) -> tuple[str, str]:
    """The prediction's own ``get`` and ``cancel`` URLs, else the documented paths."""
    job_id = str(prediction["id"])
    found = prediction.get("urls")
    urls: JSON = found if isinstance(found, dict) else {}
    get_url = urls.get("get") if isinstance(urls.get("get"), str) else None
    cancel_url = urls.get("cancel") if isinstance(urls.get("cancel"), str) else None
    return (
        get_url or f"{api_prefix}/predictions/{job_id}",
        cancel_url or f"{api_prefix}/predictions/{job_id}/cancel",
    )


def failure_error(
    error: Any, scrubber: Scrubber = STRUCTURAL, input_named: re.Pattern[str] = _INPUT_NAMED
) -> UpstreamError:
    """A failed prediction's ``error``: the client's fault only when it clearly blames the input
    (``input_named`` matches the model's input names)."""
    text = scrubber.clean(str(error)) if error else ""
    if _COMPLAINT.search(text) and input_named.search(text):
        return UpstreamError("client_error", text)
    return UpstreamError("server", text or "The provider's job failed.")


def problem_message(body: bytes, scrubber: Scrubber = STRUCTURAL) -> str:
    """``detail`` (or ``title``) of a problem+json body, cleaned for clients."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    if not isinstance(data, dict):
        return ""
    message = data.get("detail") or data.get("title") or ""
    return scrubber.clean(str(message))


def error_from_response(
    status: int, body: bytes, headers: Mapping[str, str], scrubber: Scrubber = STRUCTURAL
) -> UpstreamError:
    message = problem_message(body, scrubber)
    retry_after = parse_retry_after(headers)
    if retry_after is None and status == 429:
        hint = _THROTTLE_HINT.search(message)
        retry_after = float(hint.group(1)) if hint else None
    return classify_status(status, message, retry_after)


def download_error(
    status: int, body: bytes, headers: Mapping[str, str], scrubber: Scrubber = STRUCTURAL
) -> UpstreamError:
    """Replicate deletes outputs after an hour; its file host then answers 403, 404 or 410."""
    if status in EXPIRED_STATUSES:
        return UpstreamError(
            "server",
            "The provider's result URL expired (Replicate keeps outputs for one hour).",
            status=status,
        )
    return error_from_response(status, body, headers, scrubber)


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class ReplicateApi:
    """One provider's connection to Replicate; ``settings.base_url`` is the host root (or its
    ``/v1``), the public API when empty."""

    def __init__(self, settings: ProviderSettings, options: UpstreamOptions) -> None:
        base_url = (settings.base_url or DEFAULT_BASE_URL).rstrip("/")
        # The token goes on each request rather than on the session, so that it is only ever
        # sent to the API's own host, never to a file host named in an output URL.
        self.http = HttpUpstream(dataclasses.replace(settings, base_url=base_url), {}, options)
        self.auth = {"authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        self.api_origin = origin(base_url)
        self.prefix = "" if base_url.endswith("/v1") else "/v1"

    async def start(self) -> None:
        await self.http.start()

    async def close(self) -> None:
        await self.http.close()

    async def create(
        self, ref: ModelRef, model_input: JSON, request_id: str, wait_seconds: int | None = None
    ) -> JSON:
        """A new prediction of ``ref``; with ``wait_seconds``, as it stands after that wait."""
        path, payload = create_request(ref, model_input, self.prefix)
        headers = {**self.auth, "x-request-id": request_id}
        if wait_seconds:
            headers["prefer"] = f"wait={min(wait_seconds, MAX_PREFER_WAIT_SECONDS)}"
        reply = await self.http.send(
            "POST", path, error_from_response, payload=payload, headers=headers
        )
        return parse_prediction(reply.body)

    async def get(self, url: object, job_id: str) -> JSON:
        """The prediction now, from its own ``get`` URL when that is on the API's host."""
        target = self.target(url, f"/predictions/{job_id}")
        reply = await self.http.send("GET", target, error_from_response, headers=self.auth)
        return parse_prediction(reply.body)

    async def cancel(self, url: object, job_id: str) -> None:
        target = self.target(url, f"/predictions/{job_id}/cancel")
        await self.http.send("POST", target, error_from_response, headers=self.auth)

    def download(self, url: str, on_error: ErrorMapper = download_error) -> AsyncIterator[bytes]:
        """An output file's bytes, bounded by ``max_download_bytes``. Files served by the API
        itself need the token; signed delivery URLs must not see it."""
        headers = self.auth if origin(url) == self.api_origin else {}
        return self.http.download(url, on_error, headers)

    def target(self, url: object, fallback_path: str) -> str:
        """A URL Replicate returned when it is on the API's host, else the documented path.

        The fallback keeps the token on the configured host (e.g. behind an egress proxy).
        """
        relative = isinstance(url, str) and not url.startswith(("http://", "https://"))
        if isinstance(url, str) and url and (relative or origin(url) == self.api_origin):
            return url
        return self.prefix + fallback_path
