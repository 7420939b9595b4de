"""Chat completion chunks -> the Responses event stream: a pure, stateful translator.

``ResponseEvents`` is fed the chat chunks of one streamed completion and writes the events of
OpenAI's Responses stream, each ``event: <type>`` / ``data: <json>`` with a ``sequence_number``
from 0: ``response.created`` and ``response.in_progress``; for text, ``output_item.added``
(a message), ``content_part.added``, ``output_text.delta``..., ``output_text.done``,
``content_part.done``, ``output_item.done``; for each tool call, ``output_item.added`` (a
function call), ``function_call_arguments.delta``..., ``.done``, ``output_item.done``; then
``response.completed`` (or ``response.incomplete``) carrying the whole response. Items are
sequential, as in OpenAI's streams: one item is closed before the next is added. A failure
after the first event is one ``error`` event (``error``), after which the stream ends.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from gateway.contract.ids import new_item_id
from gateway.contract.responses_answer import (
    call_item,
    message_item,
    response_object,
    status_of,
    usage_of,
)
from gateway.contract.responses_request import ResponsesRequest

JSON = dict[str, Any]

# A content part's kind -> (its text field, its delta event, its done event).
_PARTS = {
    "output_text": ("text", "response.output_text.delta", "response.output_text.done"),
    "refusal": ("refusal", "response.refusal.delta", "response.refusal.done"),
}


class _Message:
    __slots__ = ("id", "index", "parts")

    def __init__(self, index: int) -> None:
        self.id = new_item_id("msg")
        self.index = index
        self.parts: list[JSON] = []  # {"type": ..., field: accumulated text}


class _Call:
    __slots__ = ("arguments", "call_id", "id", "index", "name")

    def __init__(self, index: int, call_id: str, name: str) -> None:
        self.id = new_item_id("fc")
        self.index = index
        self.call_id = call_id
        self.name = name
        self.arguments = ""


class ResponseEvents:
    """The events of one streamed response; ``response`` is the final object once finished."""

    def __init__(
        self,
        request: ResponsesRequest,
        response_id: str,
        model: str,
        clock: Any = time.time,
    ) -> None:
        self._request = request
        self._id = response_id
        self._model = model
        self._clock = clock
        self._created_at = int(clock())
        self._sequence = 0
        self._output: list[JSON] = []
        self._message: _Message | None = None
        self._call: _Call | None = None
        self._calls: dict[int, _Call] = {}
        self._finish_reason: Any = None
        self.usage: Any = None  # the chat usage, once the provider reported it
        self.response: JSON | None = None

    def _event(self, kind: str, payload: JSON) -> bytes:
        payload = {"type": kind, **payload, "sequence_number": self._sequence}
        self._sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    def _snapshot(self, **fields: Any) -> JSON:
        return response_object(self._request, self._id, self._created_at, self._model, **fields)

    def start(self) -> bytes:
        snapshot = self._snapshot()
        return self._event("response.created", {"response": snapshot}) + self._event(
            "response.in_progress", {"response": snapshot}
        )

    # --- items ---------------------------------------------------------------------------------

    def _close_message(self, status: str) -> bytes:
        message, self._message = self._message, None
        if message is None:
            return b""
        out = b""
        if message.parts:  # the parts before the last were closed as the next one began
            out += self._close_part(message, len(message.parts) - 1, message.parts[-1])
        item = message_item(message.id, None, None, status)
        item["content"] = message.parts
        self._output.append(item)
        return out + self._event(
            "response.output_item.done", {"output_index": message.index, "item": item}
        )

    def _close_part(self, message: _Message, content_index: int, part: JSON) -> bytes:
        field, _, done = _PARTS[part["type"]]
        where = {"item_id": message.id, "output_index": message.index}
        where["content_index"] = content_index
        closing = {**where, field: part[field]}
        if part["type"] == "output_text":
            closing["logprobs"] = []
        return self._event(done, closing) + self._event(
            "response.content_part.done", {**where, "part": part}
        )

    def _close_call(self) -> bytes:
        call, self._call = self._call, None
        if call is None:
            return b""
        item = call_item(call.id, call.call_id, call.name, call.arguments, "completed")
        self._output.append(item)
        where = {"item_id": call.id, "output_index": call.index}
        return self._event(
            "response.function_call_arguments.done",
            {**where, "name": call.name, "arguments": call.arguments},
        ) + self._event("response.output_item.done", {"output_index": call.index, "item": item})

    def _text(self, kind: str, delta: str) -> bytes:
        out = b""
        message = self._message
        if message is None:
            out += self._close_call()
            message = self._message = _Message(len(self._output))
            item = message_item(message.id, None, None, "in_progress")
            out += self._event(
                "response.output_item.added", {"output_index": message.index, "item": item}
            )
        field, delta_event, _ = _PARTS[kind]
        where = {"item_id": message.id, "output_index": message.index}
        if not message.parts or message.parts[-1]["type"] != kind:
            if message.parts:
                out += self._close_part(message, len(message.parts) - 1, message.parts[-1])
            part: JSON = {"type": kind, field: ""}
            if kind == "output_text":
                part.update(annotations=[], logprobs=[])
            message.parts.append(part)
            where["content_index"] = len(message.parts) - 1
            out += self._event("response.content_part.added", {**where, "part": dict(part)})
        where["content_index"] = len(message.parts) - 1
        message.parts[-1][field] += delta
        payload: JSON = {**where, "delta": delta}
        if kind == "output_text":
            payload["logprobs"] = []
        return out + self._event(delta_event, payload)

    def _tool_call(self, call: JSON) -> bytes:
        out = b""
        position = call.get("index", 0)
        function = call.get("function") or {}
        current = self._calls.get(position)
        if current is None:
            out += self._close_message("completed") + self._close_call()
            current = _Call(
                len(self._output),
                str(call.get("id") or new_item_id("call")),
                str(function.get("name") or ""),
            )
            self._calls[position] = self._call = current
            item = call_item(current.id, current.call_id, current.name, "", "in_progress")
            out += self._event(
                "response.output_item.added", {"output_index": current.index, "item": item}
            )
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments and current is self._call:
            current.arguments += arguments
            out += self._event(
                "response.function_call_arguments.delta",
                {"item_id": current.id, "output_index": current.index, "delta": arguments},
            )
        return out

    # --- chunks --------------------------------------------------------------------------------

    def feed(self, chunks: list[JSON]) -> bytes:
        """The events for a batch of chat chunks (often none: a role or usage chunk)."""
        out = b""
        for chunk in chunks:
            usage = chunk.get("usage")
            if usage is not None:
                self.usage = usage
            for choice in chunk.get("choices") or ():
                if choice.get("index", 0) != 0:
                    continue  # one response has one choice (n is not a Responses field)
                delta = choice.get("delta") or {}
                for kind in ("content", "refusal"):
                    text = delta.get(kind)
                    if isinstance(text, str) and text:
                        out += self._text("output_text" if kind == "content" else kind, text)
                for call in delta.get("tool_calls") or ():
                    if isinstance(call, dict):
                        out += self._tool_call(call)
                if choice.get("finish_reason") is not None:
                    self._finish_reason = choice["finish_reason"]
        return out

    def finish(self) -> bytes:
        """Close what is open and write ``response.completed`` (or ``.incomplete``)."""
        status, incomplete = status_of(self._finish_reason)
        out = self._close_message(status) + self._close_call()
        self.response = self._snapshot(
            status=status,
            output=self._output,
            usage=usage_of(self.usage),
            incomplete_details=incomplete,
            completed_at=int(self._clock()),
        )
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return out + self._event(kind, {"response": self.response})

    def error(self, code: str, message: str) -> bytes:
        """The ``error`` event that ends a stream which failed after its first event."""
        return self._event("error", {"code": code, "message": message, "param": None})
