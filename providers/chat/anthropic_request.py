"""OpenAI chat body -> Anthropic Messages request: pure functions, no I/O.

It owns ``build_request`` and its helpers: the mapping of messages (system prompt, alternating
user/assistant turns, images, tool calls and results), sampling options, stop sequences, tools and
tool_choice (the other top-level fields: ``providers.anthropic_fields``). What cannot be mapped
is a ``client_error``. The adapter in ``providers.anthropic``
does the I/O and re-exports ``build_request``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from providers.base import JSON, ChatCall, UpstreamError, as_int
from providers.chat.anthropic_fields import (
    JSON_OBJECT_TOOL,
    JSON_OBJECT_TOOL_SPEC,
    map_fields,
    refuse,
    wants_json_object,
)
from providers.tokens import content_text

_DATA_URL = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.DOTALL)
_EMPTY_SCHEMA: JSON = {"type": "object", "properties": {}}


def _reject(message: str) -> UpstreamError:
    return UpstreamError("client_error", message)


# --- request -----------------------------------------------------------------------------------


def build_request(call: ChatCall, default_max_tokens: int) -> bytes:
    """The Messages API body for an OpenAI chat body; ``client_error`` for what cannot map."""
    body = call.body
    system, messages = _convert_messages(body.get("messages"))
    out: JSON = {
        "model": call.upstream_model,
        "max_tokens": _max_tokens(body, default_max_tokens),
        "messages": messages,
    }
    if system:
        out["system"] = system
    temperature = _number(body.get("temperature"))
    top_p = _number(body.get("top_p"))
    if temperature is not None and not (temperature == 1 and top_p is not None and top_p < 1):
        # OpenAI accepts 0-2 but Anthropic only 0-1 and rejects anything above with a 400;
        # clamping keeps "as random as possible" instead of failing the request.
        out["temperature"] = min(max(temperature, 0.0), 1.0)
    # top_p = 1 is a no-op, and newer Claude models reject temperature and top_p together, so a
    # client that sends the OpenAI default (1) alongside a temperature should still work; and a
    # temperature of 1 (Anthropic's default too) beside a real top_p is not sent either.
    if top_p is not None and top_p < 1.0:
        out["top_p"] = top_p
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    stop_sequences = [item for item in stops if isinstance(item, str) and item]
    if stop_sequences:
        out["stop_sequences"] = stop_sequences
    user = body.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    map_fields(body, out)
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if wants_json_object(body):
        if tools:
            raise refuse("response_format", "json_object together with tools is not supported.")
        out["tools"] = [JSON_OBJECT_TOOL_SPEC]
        out["tool_choice"] = {"type": "tool", "name": JSON_OBJECT_TOOL}
    elif tools:
        out["tools"] = _convert_tools(tools)
        mapped = _convert_tool_choice(choice, body.get("parallel_tool_calls"))
        if mapped is not None:
            out["tool_choice"] = mapped
    elif choice is not None and choice not in ("auto", "none"):
        # Without tools only "let the model answer" means anything.
        raise refuse("tool_choice", "forces a tool call, but the request has no tools.")
    if call.stream:
        out["stream"] = True
    return orjson.dumps(out)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _max_tokens(body: Mapping[str, Any], default: int) -> int:
    for key in ("max_completion_tokens", "max_tokens"):
        value = as_int(body.get(key))
        if value is not None and value > 0:
            return value
    return default


def _convert_messages(raw: Any) -> tuple[str, list[JSON]]:
    """The joined system prompt and the alternating user/assistant turns."""
    if not isinstance(raw, list):
        raise _reject("messages must be a list.")
    system_parts: list[str] = []
    turns: list[JSON] = []
    for index, message in enumerate(raw):
        if not isinstance(message, dict):
            raise _reject("Each message must be an object.")
        role = message.get("role")
        if message.get("name") and role != "tool":
            # A participant name has no place in a Messages turn (a tool's name is redundant
            # with its tool_call_id, so that one goes).
            raise refuse(f"messages[{index}].name", "the Messages API has no participant names.")
        content = message.get("content")
        if role in ("system", "developer"):
            text = content_text(content, "\n")
            if text:
                system_parts.append(text)
            continue
        if role == "user":
            blocks = _user_blocks(content)
        elif role == "assistant":
            blocks = _assistant_blocks(message)
        elif role == "tool":
            role = "user"
            blocks = [_tool_result(message)]
        else:
            raise _reject(f"Messages with role {role!r} are not supported by this provider.")
        if not blocks:
            continue
        # Anthropic requires user and assistant turns to alternate: merge neighbours.
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    if not turns:
        raise _reject("The conversation needs at least one user or assistant message.")
    for turn in turns:
        # Tool results must open the user turn that answers the tool calls.
        blocks = turn["content"]
        turn["content"] = [b for b in blocks if b["type"] == "tool_result"] + [
            b for b in blocks if b["type"] != "tool_result"
        ]
    return "\n\n".join(system_parts), turns


def _text_block(text: str) -> list[JSON]:
    # Anthropic rejects empty text blocks; an empty string carries nothing anyway.
    return [{"type": "text", "text": text}] if text else []


def _user_blocks(content: Any) -> list[JSON]:
    if content is None:
        return []
    if isinstance(content, str):
        return _text_block(content)
    if not isinstance(content, list):
        raise _reject("Message content must be a string or a list of parts.")
    blocks: list[JSON] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            blocks += _text_block(part["text"])
        elif kind == "image_url":
            blocks.append(_image_block(part.get("image_url")))
        else:
            raise _reject(f"Content parts of type {kind!r} are not supported by this provider.")
    return blocks


def _image_block(image: Any) -> JSON:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise _reject("An image_url part needs a url.")
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    match = _DATA_URL.match(url)
    if match is None:
        raise _reject("Images must be http(s) URLs or base64 data: URLs.")
    source = {"type": "base64", "media_type": match["media"], "data": match["data"]}
    return {"type": "image", "source": source}


def _assistant_blocks(message: Mapping[str, Any]) -> list[JSON]:
    content = message.get("content")
    blocks: list[JSON] = []
    if isinstance(content, str):
        blocks += _text_block(content)
    elif isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            text = part.get("text") if part.get("type") == "text" else part.get("refusal")
            if isinstance(text, str):
                blocks += _text_block(text)
    for tool_call in message.get("tool_calls") or []:
        function = tool_call.get("function") if isinstance(tool_call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _reject("Each tool call needs a function name.")
        blocks.append(
            {
                "type": "tool_use",
                "id": str(tool_call.get("id") or ""),
                "name": function["name"],
                "input": _tool_arguments(function.get("arguments")),
            }
        )
    return blocks


def _tool_arguments(arguments: Any) -> JSON:
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, dict):
        return arguments
    try:
        value = orjson.loads(arguments) if isinstance(arguments, str) else None
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise _reject("Tool call arguments must be a JSON object.")
    return value


def _tool_result(message: Mapping[str, Any]) -> JSON:
    tool_call_id = message.get("tool_call_id")
    if not isinstance(tool_call_id, str) or not tool_call_id:
        raise _reject("A tool message needs a tool_call_id.")
    block: JSON = {"type": "tool_result", "tool_use_id": tool_call_id}
    text = content_text(message.get("content"), "\n")
    if text:
        block["content"] = text
    return block


def _convert_tools(raw: Any) -> list[JSON]:
    if not isinstance(raw, list):
        raise _reject("tools must be a list.")
    tools: list[JSON] = []
    for tool in raw:
        function = tool.get("function") if isinstance(tool, dict) else None
        if (
            not isinstance(tool, dict)
            or tool.get("type") != "function"
            or not isinstance(function, dict)
            or not isinstance(function.get("name"), str)
        ):
            raise refuse("tools", "only function tools with a name are supported by this provider.")
        converted: JSON = {
            "name": function["name"],
            "input_schema": function.get("parameters") or _EMPTY_SCHEMA,
        }
        if isinstance(function.get("description"), str):
            converted["description"] = function["description"]
        if function.get("strict") is True:
            converted["strict"] = True  # Anthropic's strict tool use: inputs fit the schema
        tools.append(converted)
    return tools


def _convert_tool_choice(choice: Any, parallel_tool_calls: Any) -> JSON | None:
    result: JSON | None
    if choice is None:
        result = None
    elif choice in ("auto", "required", "none"):
        result = {"type": {"auto": "auto", "required": "any", "none": "none"}[choice]}
    elif (
        isinstance(choice, dict)
        and choice.get("type") == "function"
        and isinstance(choice.get("function"), dict)
        and isinstance(choice["function"].get("name"), str)
    ):
        result = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise refuse("tool_choice", "must be auto, required, none or a function.")
    if parallel_tool_calls is False and (result is None or result["type"] != "none"):
        result = {**(result or {"type": "auto"}), "disable_parallel_tool_use": True}
    return result
