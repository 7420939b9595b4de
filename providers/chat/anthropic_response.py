"""Anthropic Messages responses -> OpenAI chat objects: pure functions, no I/O.

It owns the sync answer mapping (a ``message`` to a ``chat.completion``), the stream mapping
(Messages events to ``chat.completion.chunk`` objects via ``StreamTranslator``), the stop_reason
-> finish_reason mapping, usage conversion, and the reading of Anthropic's error bodies. The
adapter in ``providers.anthropic`` does the I/O and re-exports these names.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from providers.base import JSON, UpstreamError, classify_status
from providers.http.framing import parse_retry_after
from providers.scrub import STRUCTURAL, Scrubber

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

_USAGE_FIELDS = (
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
)


def finish_reason(stop_reason: Any) -> str:
    """OpenAI's ``finish_reason`` for an Anthropic ``stop_reason`` (unknown ones read as stop)."""
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def _finish(stop_reason: Any, json_tool: str | None) -> str:
    # The forced json_object tool ends the turn with tool_use: for the client the answer is text.
    reason = finish_reason(stop_reason)
    return "stop" if json_tool and reason == "tool_calls" else reason


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
    """OpenAI usage from Anthropic's.

    Anthropic's ``input_tokens`` counts only the tokens after the last cache breakpoint; OpenAI's
    ``prompt_tokens`` counts the whole prompt, with the part served from cache repeated in
    ``prompt_tokens_details.cached_tokens``. So cache reads and cache writes are prompt tokens,
    and only the reads are cached tokens (a write was processed in full, and billed so).
    """
    fields: Mapping[str, Any] = usage if isinstance(usage, dict) else {}
    cached = _count(fields, "cache_read_input_tokens")
    prompt = _count(fields, "input_tokens") + _count(fields, "cache_creation_input_tokens") + cached
    completion = _count(fields, "output_tokens")
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def parse_message(raw: bytes, model: str, json_tool: str | None = None) -> JSON:
    """A ``chat.completion`` for Anthropic's ``message`` body; ``server`` error if malformed.

    ``json_tool`` names the tool that carries a ``json_object`` answer: its input becomes the
    message content, and its stop reason a normal stop.
    """
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
        elif block.get("type") == "tool_use" and json_tool and block.get("name") == json_tool:
            texts.append(orjson.dumps(block.get("input") or {}).decode())
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
                "finish_reason": _finish(data.get("stop_reason"), json_tool),
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
        self,
        model: str,
        *,
        completion_id: str | None = None,
        created: int | None = None,
        scrubber: Scrubber = STRUCTURAL,
        json_tool: str | None = None,
    ) -> None:
        self.model = model
        self._json_tool = json_tool  # as in parse_message: this tool's input is the content
        self._json_blocks: set[Any] = set()  # content block indexes of that tool
        self._scrubber = scrubber  # cleans an error event's text, as for an error response
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
            return [self._chunk({}, _finish(stop_reason, self._json_tool))]
        if kind == "message_stop":
            self.finished = True
            chunks = [] if self._finish_sent else [self._chunk({}, "stop")]
            return [*chunks, self._usage_chunk()]
        if kind == "error":
            message = self._scrubber.clean(_error_text(event))
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
        if self._json_tool and block.get("name") == self._json_tool:
            self._json_blocks.add(event.get("index"))
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
        partial = delta.get("partial_json")
        if event.get("index") in self._json_blocks:
            return [self._chunk({"content": partial})] if partial else []
        position = self._tool_index.get(event.get("index"))
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


def error_from_response(
    status: int, body: bytes, headers: Mapping[str, str], scrubber: Scrubber = STRUCTURAL
) -> UpstreamError:
    """Classify an Anthropic error response (its message cleaned by ``scrubber``); 529
    (overloaded) is a retryable ``server`` error."""
    message = ""
    with contextlib.suppress(orjson.JSONDecodeError):
        message = _error_text(orjson.loads(body))
    return classify_status(status, scrubber.clean(message), parse_retry_after(headers))
