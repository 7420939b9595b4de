"""The top-level fields of an OpenAI chat body, each one's fate on the Messages API: pure, no I/O.

It owns ``map_fields``: every field of the body is either translated into the Messages request,
accepted because its value changes nothing (``n: 1``, penalties of 0, ``logprobs: false``...),
or refused as a ``client_error`` naming the field, before anything is sent. No field is dropped
in silence: a field this table does not know is refused too, because a provider that ignores
what the client asked for answers a different question than the one asked.

``response_format``: ``json_schema`` becomes ``output_config.format`` (Anthropic's structured
outputs, generally available without a beta header; the decoding is constrained to the schema,
which is at least what OpenAI's ``strict`` promises). ``json_object`` has no Messages
counterpart (structured outputs need a closed schema), so it becomes a forced tool whose input
is any JSON object; ``providers.anthropic_response`` turns that tool's input back into the
message content. ``JSON_OBJECT_TOOL`` names that tool.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from providers.base import JSON, UpstreamError, as_int

# The forced tool that carries a json_object answer (never shown to the client as a tool call).
JSON_OBJECT_TOOL = "json_object"
JSON_OBJECT_TOOL_SPEC: JSON = {
    "name": JSON_OBJECT_TOOL,
    "description": "Give your whole answer as this tool's input: one JSON object.",
    "input_schema": {"type": "object"},
}
# OpenAI's reasoning_effort levels that Anthropic's output_config.effort also has.
_EFFORTS = frozenset({"low", "medium", "high", "xhigh", "max"})
# Read by build_request itself (messages, sampling, stop, user, tools) or by the gateway
# (stream, stream_options), so nothing here decides about them.
TRANSLATED = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "user",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
    }
)


def refuse(field: str, why: str) -> UpstreamError:
    """A client error naming ``field``; the gateway lists it in the envelope's ``details``."""
    return UpstreamError("client_error", f"{field}: {why}", param=field)


def _no_equivalent(field: str) -> UpstreamError:
    return refuse(field, "Anthropic's Messages API has no equivalent; remove the field.")


def _only_default(default: Any) -> Callable[[str, Any, JSON], None]:
    """A field accepted only at a value that changes nothing (``==``: 0 and 0.0 alike)."""

    shown = orjson.dumps(default).decode()

    def check(field: str, value: Any, out: JSON) -> None:
        if isinstance(value, bool) != isinstance(default, bool) or value != default:
            raise refuse(
                field,
                f"the Messages API has no equivalent; only {shown} (no effect) is accepted.",
            )

    return check


def _refused(field: str, value: Any, out: JSON) -> None:
    raise _no_equivalent(field)


def wants_json_object(body: Mapping[str, Any]) -> bool:
    """Whether the answer must be a JSON object carried by the ``JSON_OBJECT_TOOL`` tool."""
    response_format = body.get("response_format")
    return isinstance(response_format, dict) and response_format.get("type") == "json_object"


def _response_format(field: str, value: Any, out: JSON) -> None:
    kind = value.get("type") if isinstance(value, dict) else None
    if kind in ("text", "json_object"):
        return  # json_object: build_request forces the tool, since it owns ``tools``
    if kind != "json_schema":
        raise refuse(f"{field}.type", "must be text, json_object or json_schema.")
    spec = value.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if not isinstance(schema, dict):
        raise refuse(f"{field}.json_schema.schema", "is required and must be an object.")
    if spec.get("description"):
        # Only the schema reaches the model; a description it would never read is refused.
        raise _no_equivalent(f"{field}.json_schema.description")
    out.setdefault("output_config", {})["format"] = {"type": "json_schema", "schema": schema}


def _reasoning_effort(field: str, value: Any, out: JSON) -> None:
    if value not in _EFFORTS:
        raise refuse(field, f"must be one of {', '.join(sorted(_EFFORTS))} for this provider.")
    out.setdefault("output_config", {})["effort"] = value


# OpenAI's service_tier -> Anthropic's: "auto" uses priority capacity where the account has it
# in both; "default" is standard capacity only. flex, scale and priority have no counterpart.
_SERVICE_TIERS = {"auto": "auto", "default": "standard_only"}


def _service_tier(field: str, value: Any, out: JSON) -> None:
    tier = _SERVICE_TIERS.get(value) if isinstance(value, str) else None
    if tier is None:
        raise refuse(field, "must be auto or default for this provider.")
    out["service_tier"] = tier


def _top_k(field: str, value: Any, out: JSON) -> None:
    top_k = as_int(value)
    if top_k is None or top_k < 0:
        raise refuse(field, "must be a non-negative integer.")
    out["top_k"] = top_k


def _thinking(field: str, value: Any, out: JSON) -> None:
    if not isinstance(value, dict):
        raise refuse(field, "must be an object (Anthropic's thinking configuration).")
    out["thinking"] = value  # Anthropic checks its shape and answers a 400 the client sees


def _cache_control(field: str, value: Any, out: JSON) -> None:
    if not isinstance(value, dict):
        raise refuse(field, "must be an object (Anthropic's cache_control).")
    out["cache_control"] = value


def _metadata(field: str, value: Any, out: JSON) -> None:
    # OpenAI's metadata tags a stored completion; Anthropic's holds only user_id (from ``user``).
    if value:
        raise _no_equivalent(field)


# field -> what happens to it. top_k, thinking and cache_control (automatic prompt caching) are
# Anthropic's own, sent through the SDK's ``extra_body``.
_FIELDS: dict[str, Callable[[str, Any, JSON], None]] = {
    "n": _only_default(1),
    "logprobs": _only_default(False),
    "top_logprobs": _only_default(0),
    "presence_penalty": _only_default(0),
    "frequency_penalty": _only_default(0),
    "logit_bias": _only_default({}),
    "store": _only_default(False),
    "seed": _refused,
    "metadata": _metadata,
    "response_format": _response_format,
    "reasoning_effort": _reasoning_effort,
    "service_tier": _service_tier,
    "top_k": _top_k,
    "thinking": _thinking,
    "cache_control": _cache_control,
}


def map_fields(body: Mapping[str, Any], out: JSON) -> None:
    """Write into ``out`` what the body's untranslated fields become; refuse what cannot map.

    A ``null`` value means "not given" (as the gateway's validation reads it) and is skipped.
    """
    for field, value in body.items():
        if value is None or field in TRANSLATED:
            continue
        handle = _FIELDS.get(field)
        if handle is None:
            raise refuse(field, "is not supported by this model's provider; remove the field.")
        handle(field, value, out)
