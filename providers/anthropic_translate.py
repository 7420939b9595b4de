"""Translation between OpenAI chat and Anthropic's Messages API: pure functions, no I/O.

It owns the request mapping (OpenAI chat body to a Messages body), the sync answer mapping (a
``message`` to a ``chat.completion``), the stream mapping (Messages events to
``chat.completion.chunk`` objects) and the reading of Anthropic's error bodies. The adapter in
``providers.anthropic`` does the I/O and re-exports these names.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from providers.base import JSON, ChatCall, UpstreamError, classify_status, clean_message
from providers.http import parse_retry_after

# Anthropic's stop_reason -> OpenAI's finish_reason. ``pause_turn`` (a server tool paused a long
# turn) has no OpenAI counterpart; the turn did end, so it reads as a normal stop.
FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}

_DATA_URL = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.DOTALL)
_EMPTY_SCHEMA: JSON = {"type": "object", "properties": {}}
_USAGE_FIELDS = (
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
)


def _reject(message: str) -> UpstreamError:
    return UpstreamError("client_error", message)


def finish_reason(stop_reason: Any) -> str:
    """OpenAI's ``finish_reason`` for an Anthropic ``stop_reason`` (unknown ones read as stop)."""
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


# --- request -----------------------------------------------------------------------------------


def build_request(call: ChatCall, default_max_tokens: int) -> bytes:
    """The Messages API body for an OpenAI chat body; ``client_error`` for what cannot map."""
    body = call.body
    n = body.get("n")
    if isinstance(n, int) and n > 1:
        raise _reject("This provider does not support n > 1.")
    system, messages = _convert_messages(body.get("messages"))
    out: JSON = {
        "model": call.upstream_model,
        "max_tokens": _max_tokens(body, default_max_tokens),
        "messages": messages,
    }
    if system:
        out["system"] = system
    temperature = _number(body.get("temperature"))
    if temperature is not None:
        # OpenAI accepts 0-2 but Anthropic only 0-1 and rejects anything above with a 400;
        # clamping keeps "as random as possible" instead of failing the request.
        out["temperature"] = min(max(temperature, 0.0), 1.0)
    top_p = _number(body.get("top_p"))
    # top_p = 1 is a no-op, and newer Claude models reject temperature and top_p together, so a
    # client that sends the OpenAI default (1) alongside a temperature should still work.
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
    tools = body.get("tools")
    if tools:
        out["tools"] = _convert_tools(tools)
        choice = _convert_tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None:
            out["tool_choice"] = choice
    if call.stream:
        out["stream"] = True
    return orjson.dumps(out)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _max_tokens(body: Mapping[str, Any], default: int) -> int:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return default


def _convert_messages(raw: Any) -> tuple[str, list[JSON]]:
    """The joined system prompt and the alternating user/assistant turns."""
    if not isinstance(raw, list):
        raise _reject("messages must be a list.")
    system_parts: list[str] = []
    turns: list[JSON] = []
    for message in raw:
        if not isinstance(message, dict):
            raise _reject("Each message must be an object.")
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            text = _joined_text(content)
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


def _joined_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


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
    text = _joined_text(message.get("content"))
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
            raise _reject("Only function tools with a name are supported by this provider.")
        converted: JSON = {
            "name": function["name"],
            "input_schema": function.get("parameters") or _EMPTY_SCHEMA,
        }
        if isinstance(function.get("description"), str):
            converted["description"] = function["description"]
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
        raise _reject("Unsupported tool_choice.")
    if parallel_tool_calls is False and (result is None or result["type"] != "none"):
        result = {**(result or {"type": "auto"}), "disable_parallel_tool_use": True}
    return result


# --- sync answer -------------------------------------------------------------------------------


def _load_object(raw: bytes, what: str) -> JSON:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError("server", f"The provider returned a malformed {what}.") from exc
    if not isinstance(data, dict):
        raise UpstreamError("server", f"The provider returned an unexpected {what}.")
    return data


def _count(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def openai_usage(usage: Any) -> JSON:
    """OpenAI usage from Anthropic's: cache writes and reads are prompt tokens too."""
    fields: Mapping[str, Any] = usage if isinstance(usage, dict) else {}
    prompt = (
        _count(fields, "input_tokens")
        + _count(fields, "cache_creation_input_tokens")
        + _count(fields, "cache_read_input_tokens")
    )
    completion = _count(fields, "output_tokens")
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def parse_message(raw: bytes, model: str) -> JSON:
    """A ``chat.completion`` for Anthropic's ``message`` body; ``server`` error if malformed."""
    data = _load_object(raw, "body")
    content = data.get("content")
    if data.get("type") != "message" or not isinstance(content, list):
        raise UpstreamError("server", "The provider returned an unexpected body.")
    texts: list[str] = []
    tool_calls: list[JSON] = []
    for block in content:
        if not isinstance(block, dict):
            raise UpstreamError("server", "The provider returned an unexpected content block.")
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif block.get("type") == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            function = {"name": str(block.get("name") or ""), "arguments": arguments}
            tool_calls.append(
                {"id": str(block.get("id") or ""), "type": "function", "function": function}
            )
        # Other blocks (thinking, server tool results) have no place in a chat.completion.
    text = "".join(texts)
    message: JSON = {
        "role": "assistant",
        "content": text if text or not tool_calls else None,
        "refusal": None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-" + str(data.get("id") or uuid.uuid4().hex),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(data.get("stop_reason")),
            }
        ],
        "usage": openai_usage(data.get("usage")),
    }


# --- stream ------------------------------------------------------------------------------------


def parse_event(raw: bytes) -> JSON:
    """One event's ``data:`` payload as a dict; ``server`` error if it is not one."""
    return _load_object(raw, "stream event")


def _error_text(data: Any) -> str:
    """The message of Anthropic's ``{"type": "error", "error": {"type", "message"}}``."""
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error.get("type") or "")
    return error if isinstance(error, str) else ""


class StreamTranslator:
    """Turns Messages stream events, fed in order, into ``chat.completion.chunk`` objects.

    Always ends with a usage chunk (``choices: []``); the gateway decides who sees it. The chunk
    id is ``completion_id`` if given, else ``chatcmpl-`` plus the id in ``message_start``.
    """

    def __init__(
        self, model: str, *, completion_id: str | None = None, created: int | None = None
    ) -> None:
        self.model = model
        self.completion_id = completion_id
        self.created = int(time.time()) if created is None else created
        self.finished = False
        self._usage: dict[str, int] = dict.fromkeys(_USAGE_FIELDS, 0)
        self._tool_index: dict[Any, int] = {}  # content block index -> OpenAI tool call index
        self._finish_sent = False

    def feed(self, event: Mapping[str, Any]) -> list[JSON]:
        if self.finished:
            return []
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message")
            message = message if isinstance(message, dict) else {}
            if self.completion_id is None and message.get("id"):
                self.completion_id = "chatcmpl-" + str(message["id"])
            self._record_usage(message.get("usage"))
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._block_start(event)
        if kind == "content_block_delta":
            return self._block_delta(event)
        if kind == "message_delta":
            self._record_usage(event.get("usage"))
            delta = event.get("delta")
            stop_reason = delta.get("stop_reason") if isinstance(delta, dict) else None
            if stop_reason is None:
                return []
            self._finish_sent = True
            return [self._chunk({}, finish_reason(stop_reason))]
        if kind == "message_stop":
            self.finished = True
            chunks = [] if self._finish_sent else [self._chunk({}, "stop")]
            return [*chunks, self._usage_chunk()]
        if kind == "error":
            message = clean_message(_error_text(event))
            raise UpstreamError("server", message or "The provider's stream failed.")
        # ping, content_block_stop, and event types Anthropic may add later: nothing to say.
        return []

    def _block_start(self, event: Mapping[str, Any]) -> list[JSON]:
        block = event.get("content_block")
        if not isinstance(block, dict):
            return []
        if block.get("type") == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        if block.get("type") != "tool_use":
            return []
        position = self._tool_index.setdefault(event.get("index"), len(self._tool_index))
        call = {
            "index": position,
            "id": str(block.get("id") or ""),
            "type": "function",
            "function": {"name": str(block.get("name") or ""), "arguments": ""},
        }
        return [self._chunk({"tool_calls": [call]})]

    def _block_delta(self, event: Mapping[str, Any]) -> list[JSON]:
        delta = event.get("delta")
        if not isinstance(delta, dict):
            return []
        if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
            return [self._chunk({"content": delta["text"]})]
        position = self._tool_index.get(event.get("index"))
        partial = delta.get("partial_json")
        if delta.get("type") == "input_json_delta" and position is not None and partial:
            call = {"index": position, "function": {"arguments": partial}}
            return [self._chunk({"tool_calls": [call]})]
        return []  # thinking, signature and citation deltas

    def _record_usage(self, usage: Any) -> None:
        # message_start carries the input counts; message_delta's counts are cumulative.
        if isinstance(usage, dict):
            for key in _USAGE_FIELDS:
                value = usage.get(key)
                if isinstance(value, int) and not isinstance(value, bool):
                    self._usage[key] = value

    def _base(self) -> JSON:
        if self.completion_id is None:
            self.completion_id = "chatcmpl-" + uuid.uuid4().hex
        return {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }

    def _chunk(self, delta: JSON, finish: str | None = None) -> JSON:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**self._base(), "choices": [choice]}

    def _usage_chunk(self) -> JSON:
        return {**self._base(), "choices": [], "usage": openai_usage(self._usage)}


# --- errors ------------------------------------------------------------------------------------


def error_from_response(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
    """Classify an Anthropic error response; 529 (overloaded) is a retryable ``server`` error."""
    message = ""
    with contextlib.suppress(orjson.JSONDecodeError):
        message = _error_text(orjson.loads(body))
    return classify_status(status, clean_message(message), parse_retry_after(headers))
