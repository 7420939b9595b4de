"""OpenAI's Responses API spoken natively by an OpenAI-compatible provider: pure functions.

An ``openai`` provider with the option ``responses_api = true`` is sent a Responses request as
the client wrote it, with the provider's model id (``build_responses_request``), to
``POST {base_url}/responses``. Its answer is checked just enough to be relied on
(``parse_response``), and its stream's events one by one (``parse_event``): a stream ends well
only after ``response.completed`` or ``response.incomplete`` (``TERMINAL_EVENTS``); an
``error`` or ``response.failed`` event is the provider failing.
"""

from __future__ import annotations

import orjson

from providers.base import JSON, ChatCall, UpstreamError
from providers.scrub import STRUCTURAL, Scrubber

TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete"})


def build_responses_request(call: ChatCall) -> bytes:
    """The client's Responses body with the provider's model id."""
    body = dict(call.body)
    body["model"] = call.upstream_model
    if call.stream:
        body["stream"] = True
    else:
        body.pop("stream", None)
        body.pop("stream_options", None)
    return orjson.dumps(body)


def parse_response(raw: bytes) -> JSON:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError("server", "The provider returned malformed JSON.") from exc
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("output"), list)
        or not isinstance(data.get("id"), str)
    ):
        raise UpstreamError("server", "The provider returned an unexpected body.")
    if data.get("status") == "failed":
        raise UpstreamError("server", "The provider failed to produce the response.")
    return data


def parse_event(raw: bytes, scrubber: Scrubber = STRUCTURAL) -> JSON:
    """One stream event; the provider's own failure events raise, their text cleaned."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError("server", "The provider sent a malformed stream event.") from exc
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise UpstreamError("server", "The provider sent an unexpected stream event.")
    if data["type"] == "error":
        raise UpstreamError("server", scrubber.clean(str(data.get("message") or "stream error")))
    if data["type"] == "response.failed":
        raise UpstreamError("server", "The provider failed to produce the response.")
    return data
