"""``POST /v1/responses`` bodies -> chat completion bodies: pure functions, no I/O.

``read_request`` checks every field of a Responses request (one ``details`` entry per bad field)
and returns a ``ResponsesRequest``: the normalized input items, the chat fields they map to, and
what the answer echoes back. ``chat_body`` assembles the chat completion request for those items
after any earlier ones (``previous_response_id``). A field the gateway cannot honour is a 400
naming it, never silently dropped: built-in tools (web search, file search, computer use, code
interpreter, ...), ``include``, ``background``, ``conversation``, ``prompt``, ... A field
OpenAI's API does not have is a 400 too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.contract.chat_validate import ChatRequest
from gateway.contract.errors import invalid
from gateway.contract.responses_items import JSON, Issues, chat_messages, check_items
from providers.base import as_int

MAX_TOOLS = 128
MAX_METADATA_PAIRS = 16


@dataclass(slots=True)
class ResponsesRequest:
    """A checked request. ``chat`` holds the chat fields other than ``messages``; ``echo`` the
    request fields a ``Response`` repeats (instructions, tools, tool_choice, temperature, ...)."""

    model: str
    items: list[JSON]
    instructions: str | None
    stream: bool
    store: bool
    previous_response_id: str | None
    chat: JSON = field(default_factory=dict)
    echo: JSON = field(default_factory=dict)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number_in(low: float, high: float) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if not _is_number(value) or not low <= value <= high:
            return f"must be a number from {low:g} to {high:g}"
        return None

    return check


def _is(kind: type, what: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        wrong = not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)
        return f"must be {what}" if wrong else None

    return check


def _max_output_tokens(value: Any) -> str | None:
    number = as_int(value)  # 16 or 16.0: JSON Schema's integer
    if number is None or number < 16:
        return "must be an integer of at least 16"
    return None


def _refused(value: Any, allowed: tuple[object, ...]) -> bool:
    """A value other than null and the listed ones (compared with their JSON types: 0 is not
    false)."""
    if value is None:
        return False
    return not any(type(value) is type(ok) and value == ok for ok in allowed)


def _metadata(value: Any) -> str | None:
    if not isinstance(value, dict) or len(value) > MAX_METADATA_PAIRS:
        return f"must be an object of at most {MAX_METADATA_PAIRS} pairs"
    for key, item in value.items():
        if len(key) > 64 or not isinstance(item, str) or len(item) > 512:
            return "keys must be at most 64 characters, values strings of at most 512"
    return None


# Fields passed to chat under the same name, with their checks (null means "not given").
_SAME_NAME: dict[str, Callable[[Any], str | None]] = {
    "temperature": _number_in(0.0, 2.0),
    "top_p": _number_in(0.0, 1.0),
    "user": _is(str, "a string"),
    "safety_identifier": _is(str, "a string"),
    "prompt_cache_key": _is(str, "a string"),
    "service_tier": _is(str, "a string"),
}
# Fields OpenAI's API has that this gateway cannot honour: refused unless null (or, for the
# listed values, the value that asks for nothing).
_REFUSED: dict[str, tuple[object, ...]] = {
    "background": (False,),
    "conversation": (),
    "prompt": (),
    "context_management": (),
    "max_tool_calls": (),
    "top_logprobs": (),
    "prompt_cache_retention": (),
    "prompt_cache_options": (),
    "moderation": (),
    "truncation": ("disabled",),
}
_HANDLED = {
    "model",
    "input",
    "instructions",
    "stream",
    "stream_options",
    "store",
    "previous_response_id",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "text",
    "max_output_tokens",
    "metadata",
    "include",
    "reasoning",
}


def _tools(raw: Any, issues: Issues) -> list[JSON]:
    """Responses' flat function tools as chat's nested ones; any other tool type is refused."""
    if not isinstance(raw, list) or len(raw) > MAX_TOOLS:
        issues.append({"field": "tools", "issue": f"must be an array of at most {MAX_TOOLS}"})
        return []
    tools: list[JSON] = []
    for index, tool in enumerate(raw):
        at = f"tools[{index}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            shown = f"{kind!s:.40} tools are" if isinstance(kind, str) else "this tool is"
            issues.append(
                {
                    "field": f"{at}.type",
                    "issue": f"{shown} not supported by this gateway (only function tools)",
                }
            )
            continue
        assert isinstance(tool, dict)
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            issues.append({"field": f"{at}.name", "issue": "is required and must be a string"})
            continue
        function: JSON = {"name": name}
        for key, check in (("description", str), ("parameters", dict), ("strict", bool)):
            value = tool.get(key)
            if value is None:
                continue
            if not isinstance(value, check):
                issues.append({"field": f"{at}.{key}", "issue": f"must be a {check.__name__}"})
            else:
                function[key] = value
        unknown = set(tool) - {"type", "name", "description", "parameters", "strict"}
        issues.extend({"field": f"{at}.{key}", "issue": "is not supported"} for key in unknown)
        tools.append({"type": "function", "function": function})
    return tools


def _tool_choice(raw: Any, issues: Issues) -> Any:
    if raw in ("none", "auto", "required"):
        return raw
    if isinstance(raw, dict) and raw.get("type") == "function":
        name = raw.get("name")
        if isinstance(name, str) and name:
            return {"type": "function", "function": {"name": name}}
        issues.append({"field": "tool_choice.name", "issue": "is required and must be a string"})
        return None
    issues.append(
        {
            "field": "tool_choice",
            "issue": "must be none, auto, required or {type: function, name} (hosted and "
            "allowed_tools choices are not supported)",
        }
    )
    return None


def _text_format(raw: Any, issues: Issues) -> JSON | None:
    """``text.format`` as chat's ``response_format`` (None: plain text)."""
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind != "json_schema":
        issues.append(
            {"field": "text.format.type", "issue": "must be text, json_schema or json_object"}
        )
        return None
    assert isinstance(raw, dict)
    name, schema = raw.get("name"), raw.get("schema")
    if not isinstance(name, str) or not name:
        issues.append({"field": "text.format.name", "issue": "is required and must be a string"})
    if not isinstance(schema, dict):
        issues.append({"field": "text.format.schema", "issue": "is required and must be an object"})
    json_schema: JSON = {"name": name, "schema": schema}
    for key, check in (("description", str), ("strict", bool)):
        value = raw.get(key)
        if value is not None:
            if not isinstance(value, check):
                issues.append({"field": f"text.format.{key}", "issue": "has the wrong type"})
            json_schema[key] = value
    return {"type": "json_schema", "json_schema": json_schema}


def _text(raw: Any, chat: JSON, issues: Issues) -> JSON:
    """``text`` (format, verbosity) into ``chat``; what the answer echoes."""
    if not isinstance(raw, dict):
        issues.append({"field": "text", "issue": "must be an object"})
        return {"format": {"type": "text"}}
    for key in set(raw) - {"format", "verbosity"}:
        issues.append({"field": f"text.{key}", "issue": "is not a field of text"})
    echo: JSON = {"format": raw.get("format") or {"type": "text"}}
    if raw.get("format") is not None:
        response_format = _text_format(raw["format"], issues)
        if response_format is not None:
            chat["response_format"] = response_format
    verbosity = raw.get("verbosity")
    if verbosity is not None:
        if verbosity not in ("low", "medium", "high"):
            issues.append({"field": "text.verbosity", "issue": "must be low, medium or high"})
        chat["verbosity"] = echo["verbosity"] = verbosity
    return echo


def _reasoning(raw: Any, chat: JSON, issues: Issues) -> None:
    if not isinstance(raw, dict):
        issues.append({"field": "reasoning", "issue": "must be an object"})
        return
    for key, value in raw.items():
        if key == "effort" and value is not None:
            if not isinstance(value, str):
                issues.append({"field": "reasoning.effort", "issue": "must be a string"})
            chat["reasoning_effort"] = value
        elif value is not None:
            issues.append({"field": f"reasoning.{key}", "issue": "is not supported"})


def read_request(body: dict[str, Any]) -> ResponsesRequest:
    """The checked request, or ``invalid_request`` listing every problem."""
    issues: Issues = []
    for name in body:
        if name not in _HANDLED and name not in _SAME_NAME and name not in _REFUSED:
            issues.append({"field": name, "issue": "is not a field of this API"})
    model = body.get("model")
    if not isinstance(model, str) or not model:
        issues.append({"field": "model", "issue": "is required and must be a non-empty string"})
    if "input" not in body:
        issues.append({"field": "input", "issue": "is required"})
        items: list[JSON] = []
    else:
        items = check_items(body["input"], issues)
    chat: JSON = {}
    echo: JSON = {"temperature": None, "top_p": None, "tools": [], "tool_choice": "auto"}
    # Only the fields the body has are looked at (most requests send a handful).
    for name, value in body.items():
        check = _SAME_NAME.get(name)
        if check is not None:
            if value is not None:
                problem = check(value)
                if problem:
                    issues.append({"field": name, "issue": problem})
                chat[name] = echo[name] = value
        elif name in _REFUSED and _refused(value, _REFUSED[name]):
            issues.append({"field": name, "issue": "is not supported by this gateway"})
    include = body.get("include")
    if include is not None and include != []:
        issues.append({"field": "include", "issue": "is not supported by this gateway"})
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        issues.append({"field": "instructions", "issue": "must be a string"})
    flags = {}
    for name in ("stream", "store", "parallel_tool_calls"):
        value = body.get(name)
        if value is not None and not isinstance(value, bool):
            issues.append({"field": name, "issue": "must be a boolean"})
        flags[name] = value
    stream = flags["stream"] is True
    options = body.get("stream_options")
    # include_obfuscation pads deltas against side channels; these streams never pad.
    if options is not None and (
        not stream or not isinstance(options, dict) or set(options) - {"include_obfuscation"}
    ):
        issues.append({"field": "stream_options", "issue": "only include_obfuscation, with stream"})
    tools = body.get("tools")
    if tools is not None:
        chat_tools = _tools(tools, issues)
        if chat_tools:
            chat["tools"] = chat_tools
        # Echoed as OpenAI's answer lists them: every field of a function tool, null if unset.
        echo["tools"] = [
            {
                "type": "function",
                "name": tool["function"]["name"],
                "description": tool["function"].get("description"),
                "parameters": tool["function"].get("parameters"),
                "strict": tool["function"].get("strict"),
            }
            for tool in chat_tools
        ]
    choice = body.get("tool_choice")
    if choice is not None:
        mapped = _tool_choice(choice, issues)
        if chat.get("tools"):
            chat["tool_choice"] = mapped
        echo["tool_choice"] = choice
    if flags["parallel_tool_calls"] is not None and chat.get("tools"):
        chat["parallel_tool_calls"] = flags["parallel_tool_calls"]
    echo["parallel_tool_calls"] = flags["parallel_tool_calls"] is not False
    echo["text"] = _text(body["text"], chat, issues) if body.get("text") is not None else None
    if echo["text"] is None:
        echo["text"] = {"format": {"type": "text"}}
    limit = body.get("max_output_tokens")
    if limit is not None:
        problem = _max_output_tokens(limit)
        if problem:
            issues.append({"field": "max_output_tokens", "issue": problem})
        chat["max_completion_tokens"] = as_int(limit)
    echo["max_output_tokens"] = as_int(limit) if limit is not None else None
    metadata = body.get("metadata")
    if metadata is not None:
        problem = _metadata(metadata)
        if problem:
            issues.append({"field": "metadata", "issue": problem})
    echo["metadata"] = metadata if isinstance(metadata, dict) else {}
    if body.get("reasoning") is not None:
        _reasoning(body["reasoning"], chat, issues)
    previous = body.get("previous_response_id")
    if previous is not None and (not isinstance(previous, str) or not previous):
        issues.append({"field": "previous_response_id", "issue": "must be a response id"})
    if issues:
        raise invalid(issues)
    return ResponsesRequest(
        model=str(model),
        items=items,
        instructions=instructions,
        stream=stream,
        store=flags["store"] is not False,  # OpenAI's default: stored unless store is false
        previous_response_id=previous,
        chat=chat,
        echo=echo,
    )


def chat_body(request: ResponsesRequest, earlier: list[JSON] | None = None) -> ChatRequest:
    """The chat completion request for ``request``, after the ``earlier`` items of the
    conversation it continues. Usage is always asked for: it settles rate limits and is the
    ``usage`` of the answer."""
    body: JSON = {
        "model": request.model,
        "messages": chat_messages(request.instructions, [*(earlier or []), *request.items]),
        **request.chat,
    }
    if request.stream:
        body["stream"] = True  # (the adapters ask their providers for the usage chunk)
    return ChatRequest(body=body, model=request.model, stream=request.stream, include_usage=True)
