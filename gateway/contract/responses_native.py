"""Responses answered by a provider's own Responses API: pure functions, no I/O.

Such a provider gets the client's body unchanged but for the model (the adapter swaps it) and a
``previous_response_id``, which the gateway resolves from its own store so that a conversation
can move between deployments: ``native_body`` drops it and puts the stored conversation before
``input``. The answer (or each event of the stream) gets the catalog id as ``model``; usage is
read back for the rate limits and the access log as chat usage.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.contract.responses_items import JSON

TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete"})


def _native_item(item: JSON) -> JSON:
    """A normalized conversation item as a Responses input item."""
    if item["type"] != "message":
        return item
    content = item["content"]
    if item["role"] == "assistant" and isinstance(content, list):
        text = "".join(part.get("text") or part.get("refusal") or "" for part in content)
        return {"role": "assistant", "content": text}
    return {"role": item["role"], "content": content}


def native_body(body: JSON, earlier: list[JSON] | None) -> JSON:
    """What the provider is sent: the client's body, its earlier conversation (if it named a
    ``previous_response_id``) spelled out in ``input``."""
    if earlier is None:
        return body
    sent = {name: value for name, value in body.items() if name != "previous_response_id"}
    given = body["input"]
    new = [{"role": "user", "content": given}] if isinstance(given, str) else list(given)
    sent["input"] = [*map(_native_item, earlier), *new]
    return sent


def chat_usage(usage: Any) -> JSON | None:
    """Responses usage as the chat usage the gateway counts."""
    if not isinstance(usage, dict):
        return None
    return {
        "prompt_tokens": usage.get("input_tokens"),
        "completion_tokens": usage.get("output_tokens"),
    }


class NativeEvents:
    """A provider's Responses events re-framed for the client, each with the catalog id as the
    ``model`` of the response it carries, and kept as they are otherwise (sequence numbers
    included). The same interface as ``ResponseEvents``: ``start`` and ``finish`` write nothing
    (the provider's stream has its own first and last events)."""

    def __init__(self, model: str) -> None:
        self._model = model
        self._next = 0
        self.usage: JSON | None = None
        self.response: JSON | None = None

    def start(self) -> bytes:
        return b""

    def feed(self, events: list[JSON]) -> bytes:
        out = b""
        for event in events:
            response = event.get("response")
            if isinstance(response, dict):
                response["model"] = self._model
                if event["type"] in TERMINAL_EVENTS:
                    self.response = response
                    self.usage = chat_usage(response.get("usage"))
            sequence = event.get("sequence_number")
            if isinstance(sequence, int) and not isinstance(sequence, bool):
                self._next = sequence + 1
            kind = str(event["type"]).encode()
            out += b"event: " + kind + b"\ndata: " + orjson.dumps(event) + b"\n\n"
        return out

    def finish(self) -> bytes:
        return b""

    def error(self, code: str, message: str) -> bytes:
        payload = {
            "type": "error",
            "code": code,
            "message": message,
            "param": None,
            "sequence_number": self._next,
        }
        self._next += 1
        return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"
