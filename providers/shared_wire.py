"""Wire-format pieces that adapters of more than one package read: the error bodies of OpenAI's
API (chat, embeddings and images) and of Stability's (Stable Audio and Stable Image), and
Stability's finish reasons and the check of its answers. Pure functions; each adapter module
names them as its own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from providers.base import UpstreamError, classify_status
from providers.http.framing import parse_retry_after
from providers.scrub import STRUCTURAL, Scrubber

# Stability's ``finish-reason`` header (``finish_reason`` in its JSON answers).
STABILITY_FINISH_SUCCESS = "SUCCESS"
STABILITY_FINISH_FILTERED = "CONTENT_FILTERED"


def openai_error(
    status: int, body: bytes, headers: Mapping[str, str], scrubber: Scrubber = STRUCTURAL
) -> UpstreamError:
    """Classify an OpenAI-style error response (``{"error": {"message": ..., "param": ...}}``),
    its message and ``param`` cleaned by ``scrubber``."""
    message = ""
    param = None
    try:
        data: Any = orjson.loads(body)
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            message = str(data["error"].get("message") or "")
            param = scrubber.field(data["error"].get("param"))
        elif isinstance(data, dict) and isinstance(data.get("error"), str):
            message = data["error"]
    except orjson.JSONDecodeError:
        pass
    return classify_status(status, scrubber.clean(message), parse_retry_after(headers), param=param)


def stability_error(
    status: int, body: bytes, headers: Mapping[str, str], scrubber: Scrubber = STRUCTURAL
) -> UpstreamError:
    """Classify a Stability error answer (``{"id": ..., "name": ..., "errors": [...]}``)."""
    name = ""
    message = ""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        name = str(data.get("name") or "")
        errors = data.get("errors")
        if isinstance(errors, list) and errors:
            message = "; ".join(str(item) for item in errors)
        else:
            message = str(data.get("message") or name)
    message = scrubber.clean(message)
    # Stability refuses flagged prompts, audio or images with 403; that is the request's fault,
    # not a problem with the operator's key, so it must not look like an auth failure.
    if status == 403 and "moderation" in name.lower():
        return UpstreamError(
            "client_error",
            message or "The provider's content moderation rejected the request.",
            status=status,
        )
    # 402 means the operator's account ran out of credits: nothing the client can fix.
    if status == 402:
        return UpstreamError(
            "auth", "The provider account has insufficient credits.", status=status
        )
    return classify_status(status, message, parse_retry_after(headers))


def stability_headers(accept: str, api_key: str | None) -> dict[str, str]:
    """The headers every call of a Stability adapter carries. ``accept`` asks for raw bytes
    (``image/*``, ``audio/*``) rather than JSON with base64, which is a third larger and must be
    decoded."""
    headers = {"accept": accept}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    return headers


def check_stability_reply(
    headers: Mapping[str, str], media: str, *, finished: str, missing: str
) -> str:
    """The content type of a Stability 200 answer, which must have finished and carry ``media``
    (``image`` or ``audio``, the top-level type); ``finished`` and ``missing`` name the thing
    in the errors."""
    finish = (headers.get("finish-reason") or STABILITY_FINISH_SUCCESS).strip().upper()
    if finish == STABILITY_FINISH_FILTERED:
        raise UpstreamError(
            "client_error", f"The provider's content moderation filtered the generated {media}."
        )
    if finish != STABILITY_FINISH_SUCCESS:
        raise UpstreamError("server", f"The provider finished {finished} with {finish[:40]}.")
    content_type = (headers.get("content-type") or "").split(";")[0].strip().lower()
    if not content_type.startswith(f"{media}/"):
        raise UpstreamError("server", f"The provider answered without {missing}.")
    return content_type
