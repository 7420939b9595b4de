"""fal.ai's queue API, shared by the music and image adapters of kind ``fal``.

fal serves every model behind one queue protocol: ``POST {base_url}/{model_id}`` submits the
model's input and answers ``{request_id, status_url, response_url, cancel_url}``; ``GET
status_url`` answers ``IN_QUEUE``, ``IN_PROGRESS`` or ``COMPLETED`` (finished, successfully or
not: the result tells which); ``GET response_url`` answers the model's output or its error;
``PUT cancel_url`` asks the queue to stop. Those URLs are used as given, never rebuilt: fal
drops the model's sub-path from them. Every call carries ``Authorization: Key ...``, sent per
request rather than as a pooled-client default, because output files live on a public CDN.

This module owns that protocol (``FalQueue``) and the classification of fal's error answers:
pure functions, kept next to the calls they serve. Model inputs and results are the adapters'.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal

import orjson

from providers.base import ProviderSettings, UpstreamError, classify_status
from providers.http.framing import parse_retry_after
from providers.http.upstream import HttpUpstream
from providers.http.values import Reply, UpstreamOptions
from providers.scrub import STRUCTURAL, Scrubber

DEFAULT_BASE_URL = "https://queue.fal.run"
PENDING_STATUSES = frozenset({"IN_QUEUE", "IN_PROGRESS"})
COMPLETED = "COMPLETED"
JOB_URL_KEYS = ("status_url", "response_url", "cancel_url")
# The error_type fal gives a request its caller canceled (HTTP 499).
CANCELED_ERROR_TYPES = frozenset({"client_cancelled"})
# What a non-2xx answer of the result URL says about the job: nothing (this poll failed and may
# be retried), that the job failed, or that it was canceled.
ResultOutcome = Literal["poll_failed", "failed", "canceled"]


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


def classify_result_error(
    status: int, body: bytes, headers: Mapping[str, str], scrubber: Scrubber = STRUCTURAL
) -> tuple[ResultOutcome, UpstreamError]:
    """A non-2xx answer from the result URL: what it says about the job, and the error.

    fal answers the result URL with the model's own error when the job failed; that is the job's
    outcome. Credentials, rate limits and bare gateway errors (an HTML 502 from the ingress) are
    failures of this poll, which a caller may retry.
    """
    if status in (401, 403, 429):
        return "poll_failed", error_from_response(status, body, headers, scrubber)
    message, error_type, fal_body = error_detail(body, scrubber)
    if status == 499 or error_type in CANCELED_ERROR_TYPES:
        return "canceled", UpstreamError("server", "The provider canceled the job.", status=status)
    if status in (404, 410):
        lost = UpstreamError(
            "server", "The provider no longer holds the job's result.", status=status
        )
        return "failed", lost
    if status >= 500 and not fal_body:
        return "poll_failed", error_from_response(status, body, headers, scrubber)
    error = classify_status(status, message, parse_retry_after(headers))
    if error.kind in ("server", "timeout") and message:
        error = UpstreamError(error.kind, f"The provider's job failed: {message}", status=status)
    return "failed", error


def file_error(
    status: int, body: bytes, headers: Mapping[str, str], scrubber: Scrubber = STRUCTURAL
) -> UpstreamError:
    """A non-2xx answer from an output file URL: fal's file URLs expire."""
    if status in (403, 404, 410):
        return UpstreamError(
            "server", "The provider's result URL expired before it was downloaded.", status=status
        )
    return classify_status(status, "", parse_retry_after(headers))


def data_uri(content_type: str, data: bytes) -> str:
    """A file input inline: fal accepts base64 data URIs wherever a model takes a file URL."""
    return f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"


def json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        data: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError("server", f"The provider returned a malformed {what}.") from exc
    if not isinstance(data, dict):
        raise UpstreamError("server", f"The provider returned an unexpected {what}.")
    return data


def parse_submit_urls(raw: bytes) -> tuple[str, dict[str, str]]:
    """The submit answer: the request id and the URLs to use for everything that follows."""
    data = json_object(raw, "submit answer")
    request_id = data.get("request_id")
    urls = {key: data.get(key) for key in JOB_URL_KEYS}
    if not isinstance(request_id, str) or not all(isinstance(u, str) for u in urls.values()):
        raise UpstreamError("server", "The provider's submit answer lacked its request URLs.")
    return request_id, {key: str(url) for key, url in urls.items()}


def parse_queue_status(raw: bytes) -> str:
    """The queue state of a status answer: IN_QUEUE, IN_PROGRESS or COMPLETED."""
    status = json_object(raw, "status answer").get("status")
    if status != COMPLETED and status not in PENDING_STATUSES:
        raise UpstreamError("server", "The provider reported an unknown job status.")
    return str(status)


class FalQueue:
    """One provider's connection to fal's queue; ``settings.base_url`` defaults to fal's."""

    def __init__(self, settings: ProviderSettings, options: UpstreamOptions) -> None:
        if not settings.base_url:
            settings = dataclasses.replace(settings, base_url=DEFAULT_BASE_URL)
        self.auth = {"authorization": f"Key {settings.api_key}"} if settings.api_key else {}
        self.http = HttpUpstream(settings, {}, options)

    async def start(self) -> None:
        await self.http.start()

    async def close(self) -> None:
        await self.http.close()

    async def submit(self, model_id: str, model_input: Mapping[str, Any]) -> Reply:
        return await self.http.send(
            "POST",
            "/" + model_id.strip("/"),
            error_from_response,
            payload=orjson.dumps(model_input),
            headers=self.auth,
        )

    async def status(self, status_url: str) -> Reply:
        return await self.http.send("GET", status_url, error_from_response, headers=self.auth)

    async def result(self, response_url: str) -> Reply:
        """The model's output; a failed or canceled job raises its error."""

        def result_error(
            status: int, body: bytes, headers: Mapping[str, str], scrubber: Scrubber
        ) -> UpstreamError:
            return classify_result_error(status, body, headers, scrubber)[1]

        return await self.http.send("GET", response_url, result_error, headers=self.auth)

    async def cancel(self, cancel_url: str) -> None:
        try:
            await self.http.send("PUT", cancel_url, error_from_response, headers=self.auth)
        except UpstreamError as error:
            # fal answers 400 ALREADY_COMPLETED or 404 NOT_FOUND: nothing is left to stop.
            if error.status in (400, 404):
                return
            raise

    def download(self, url: str) -> AsyncIterator[bytes]:
        """An output file (public: no key), bounded by ``max_download_bytes``."""
        return self.http.download(url, file_error)
