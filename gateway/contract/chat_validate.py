"""Validation of ``POST /v1/chat/completions`` bodies, with one ``details`` entry per bad field.

The fields the contract pins down are checked strictly; other OpenAI fields are type-checked
where a wrong type would only fail later at the provider, and everything else passes through
untouched to providers that support it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.contract.errors import MAX_LISTED_ISSUES, invalid
from providers.base import as_int

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
CONTENT_PART_TYPES = frozenset({"text", "image_url", "input_audio", "file", "refusal"})
MAX_MESSAGES = 10_000
MAX_STOP_SEQUENCES = 4

Issues = list[dict[str, str]]


@dataclass(slots=True)
class ChatRequest:
    """The validated request; ``body`` is the client's JSON object, unmodified."""

    body: dict[str, Any]
    model: str
    stream: bool
    include_usage: bool


def _is_int(value: Any) -> bool:
    if isinstance(value, int):  # the common case, as cheap as before
        return not isinstance(value, bool)
    # JSON Schema's integer, as /openapi.json promises: 3.0 counts (adapters read it by as_int).
    return as_int(value) is not None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number_in(low: float, high: float) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if not _is_number(value):
            return "must be a number"
        if not low <= value <= high:
            return f"must be between {low:g} and {high:g}"
        return None

    return check


def _int_at_least(low: int, high: int | None = None) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if not _is_int(value):
            return "must be an integer"
        if value < low or (high is not None and value > high):
            return f"must be at least {low}" if high is None else f"must be {low} to {high}"
        return None

    return check


def _of(kind: type | tuple[type, ...], what: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) and kind is not bool:
            return f"must be {what}"
        return None if isinstance(value, kind) else f"must be {what}"

    return check


def _integer(value: Any) -> str | None:
    return None if _is_int(value) else "must be an integer"


def _stop(value: Any) -> str | None:
    if isinstance(value, str):
        return None
    if (
        isinstance(value, list)
        and len(value) <= MAX_STOP_SEQUENCES
        and all(isinstance(item, str) for item in value)
    ):
        return None
    return f"must be a string or a list of up to {MAX_STOP_SEQUENCES} strings"


# Optional fields: a null value means "not given", as in OpenAI's API.
OPTIONAL_FIELDS: dict[str, Callable[[Any], str | None]] = {
    "stream": _of(bool, "a boolean"),
    "temperature": _number_in(0.0, 2.0),
    "top_p": _number_in(0.0, 1.0),
    "max_tokens": _int_at_least(1),
    "max_completion_tokens": _int_at_least(1),
    "n": _int_at_least(1, 128),
    "stop": _stop,
    "presence_penalty": _number_in(-2.0, 2.0),
    "frequency_penalty": _number_in(-2.0, 2.0),
    "seed": _integer,
    "user": _of(str, "a string"),
    "logprobs": _of(bool, "a boolean"),
    "top_logprobs": _int_at_least(0, 20),
    "logit_bias": _of(dict, "an object"),
    "response_format": _of(dict, "an object"),
    "tools": _of(list, "an array"),
    "tool_choice": _of((str, dict), "a string or an object"),
    "parallel_tool_calls": _of(bool, "a boolean"),
    "stream_options": _of(dict, "an object"),
    "metadata": _of(dict, "an object"),
}


def validate_chat(body: dict[str, Any]) -> ChatRequest:
    """Return the validated request or raise ``invalid_request`` listing every problem."""
    issues: Issues = []
    model = body.get("model")
    if not isinstance(model, str) or not model:
        issues.append({"field": "model", "issue": "is required and must be a non-empty string"})
    _check_messages(body.get("messages"), issues)
    for name, check in OPTIONAL_FIELDS.items():
        value = body.get(name)
        if value is not None:
            problem = check(value)
            if problem:
                issues.append({"field": name, "issue": problem})
    # Both set is ambiguous unless one is 1, OpenAI's default, which many clients always send.
    top_p = body.get("top_p")
    if top_p is not None and top_p != 1:
        temperature = body.get("temperature")
        if temperature is not None and temperature != 1:
            issues.append(
                {"field": "top_p", "issue": "pass either temperature or top_p, not both (or one 1)"}
            )
    stream = body.get("stream") is True
    options = body.get("stream_options")
    include_usage = False
    if isinstance(options, dict):
        if not stream:
            issues.append({"field": "stream_options", "issue": "is only allowed with stream: true"})
        usage_flag = options.get("include_usage")
        if usage_flag is not None and not isinstance(usage_flag, bool):
            issues.append({"field": "stream_options.include_usage", "issue": "must be a boolean"})
        include_usage = usage_flag is True
    if issues:
        raise invalid(issues)
    return ChatRequest(body=body, model=str(model), stream=stream, include_usage=include_usage)


def _check_messages(messages: Any, issues: Issues) -> None:
    if not isinstance(messages, list) or not messages:
        issues.append({"field": "messages", "issue": "is required and must be a non-empty array"})
        return
    if len(messages) > MAX_MESSAGES:
        issues.append({"field": "messages", "issue": f"must have at most {MAX_MESSAGES} items"})
        return
    for index, message in enumerate(messages):
        if len(issues) > MAX_LISTED_ISSUES:
            return
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            issues.append({"field": where, "issue": "must be an object"})
            continue
        role = message.get("role")
        # isinstance first: an unhashable value (an object, an array) cannot be looked up.
        if not isinstance(role, str) or role not in ROLES:
            issues.append(
                {"field": f"{where}.role", "issue": f"must be one of {', '.join(sorted(ROLES))}"}
            )
            continue
        content = message.get("content")
        if content is None:
            # Only an assistant message that calls tools may omit its content.
            if not (role == "assistant" and message.get("tool_calls")):
                issues.append({"field": f"{where}.content", "issue": "is required"})
        elif isinstance(content, list):
            _check_parts(content, f"{where}.content", issues)
        elif not isinstance(content, str):
            issues.append(
                {"field": f"{where}.content", "issue": "must be a string or an array of parts"}
            )
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            issues.append({"field": f"{where}.tool_call_id", "issue": "is required for tool"})
        name = message.get("name")
        if name is not None and not isinstance(name, str):
            issues.append({"field": f"{where}.name", "issue": "must be a string"})


def _check_parts(parts: list[Any], where: str, issues: Issues) -> None:
    if not parts:
        issues.append({"field": where, "issue": "must not be empty"})
    for index, part in enumerate(parts):
        if len(issues) > MAX_LISTED_ISSUES:
            return
        at = f"{where}[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if not isinstance(kind, str) or kind not in CONTENT_PART_TYPES:
            issues.append({"field": f"{at}.type", "issue": "unknown content part type"})
        elif kind == "text" and not isinstance(part.get("text"), str):
            issues.append({"field": f"{at}.text", "issue": "must be a string"})
