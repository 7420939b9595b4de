"""Chat completion -> Responses ``Response`` object: pure functions, no I/O.

``response_object`` builds the envelope every Responses answer shares (the stream's
``response.created`` and ``response.completed`` events carry it too); ``from_completion`` fills
it from a whole chat completion: the assistant's text as a ``message`` item with
``output_text`` content (a refusal as ``refusal`` content), each tool call as a
``function_call`` item, the finish reason as ``status`` / ``incomplete_details`` and chat usage as
Responses usage. ``model`` is always the catalog id that answered.
"""

from __future__ import annotations

from typing import Any

from gateway.contract.ids import new_item_id
from gateway.contract.responses_request import ResponsesRequest

JSON = dict[str, Any]

# Chat finish reasons that leave a response incomplete, and the reason Responses gives.
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def status_of(finish_reason: Any) -> tuple[str, JSON | None]:
    """``status`` and ``incomplete_details`` for a chat finish reason."""
    reason = INCOMPLETE.get(finish_reason) if isinstance(finish_reason, str) else None
    if reason is None:
        return "completed", None
    return "incomplete", {"reason": reason}


def usage_of(usage: Any) -> JSON | None:
    """Chat usage as Responses usage (None when the provider reported none)."""
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": prompt_details.get("cached_tokens") or 0,
            "cache_write_tokens": prompt_details.get("cache_write_tokens") or 0,
        },
        "output_tokens": completion,
        "output_tokens_details": {
            "reasoning_tokens": completion_details.get("reasoning_tokens") or 0
        },
        "total_tokens": usage.get("total_tokens") or prompt + completion,
    }


def response_object(
    request: ResponsesRequest,
    response_id: str,
    created_at: int,
    model: str,
    *,
    status: str = "in_progress",
    output: list[JSON] | None = None,
    usage: JSON | None = None,
    incomplete_details: JSON | None = None,
    completed_at: int | None = None,
) -> JSON:
    """The ``Response`` envelope, echoing the request's settings as OpenAI's API does."""
    echo = request.echo
    response: JSON = {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "completed_at": completed_at,
        "background": False,
        "error": None,
        "incomplete_details": incomplete_details,
        "instructions": request.instructions,
        "max_output_tokens": echo["max_output_tokens"],
        "metadata": echo["metadata"],
        "model": model,
        "output": output if output is not None else [],
        "parallel_tool_calls": echo["parallel_tool_calls"],
        "previous_response_id": request.previous_response_id,
        "reasoning": None,
        "store": request.store,
        "temperature": echo["temperature"],
        "text": echo["text"],
        "tool_choice": echo["tool_choice"],
        "tools": echo["tools"],
        "top_p": echo["top_p"],
        "truncation": "disabled",
    }
    if usage is not None:
        response["usage"] = usage  # an object in OpenAI's schema: absent until it is known
    if "user" in echo:
        response["user"] = echo["user"]  # a string in OpenAI's schema: absent when not given
    return response


def message_item(item_id: str, text: str | None, refusal: str | None, status: str) -> JSON:
    content: list[JSON] = []
    if text:
        content.append({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
    if refusal:
        content.append({"type": "refusal", "refusal": refusal})
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> JSON:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def output_of(message: Any, status: str) -> list[JSON]:
    """The output items of a chat choice's ``message``: its text or refusal, then its calls."""
    if not isinstance(message, dict):
        return []
    output: list[JSON] = []
    text, refusal = message.get("content"), message.get("refusal")
    if (isinstance(text, str) and text) or (isinstance(refusal, str) and refusal):
        item_status = "incomplete" if status == "incomplete" else "completed"
        output.append(
            message_item(
                new_item_id("msg"),
                text if isinstance(text, str) else None,
                refusal if isinstance(refusal, str) else None,
                item_status,
            )
        )
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        arguments = function.get("arguments")
        output.append(
            call_item(
                new_item_id("fc"),
                str(call.get("id") or new_item_id("call")),
                str(function.get("name") or ""),
                arguments if isinstance(arguments, str) else "{}",
                "completed",
            )
        )
    return output


def from_completion(
    request: ResponsesRequest,
    completion: JSON,
    model: str,
    response_id: str,
    *,
    created_at: int,
    completed_at: int,
) -> JSON:
    """The ``Response`` for a whole chat completion (its first choice)."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    status, incomplete = status_of(choice.get("finish_reason"))
    return response_object(
        request,
        response_id,
        created_at,
        model,
        status=status,
        output=output_of(choice.get("message"), status),
        usage=usage_of(completion.get("usage")),
        incomplete_details=incomplete,
        completed_at=completed_at,
    )


def output_items(response: JSON) -> list[JSON]:
    """A response's output as input items a later turn sends back (``previous_response_id``):
    messages with their text, and function calls."""
    items: list[JSON] = []
    for item in response.get("output") or []:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "function_call":
            fields = {key: item.get(key) for key in ("call_id", "name", "arguments")}
            if all(isinstance(value, str) for value in fields.values()):
                items.append({"type": "function_call", **fields})
        elif kind == "message":
            # A provider speaking Responses natively sent these: only what is well-formed.
            parts: list[JSON] = []
            for part in item.get("content") or []:
                part_kind = part.get("type") if isinstance(part, dict) else None
                field = {"output_text": "text", "refusal": "refusal"}.get(str(part_kind))
                if field is not None and isinstance(part.get(field), str):
                    parts.append({"type": part_kind, field: part[field]})
            if parts:
                items.append({"type": "message", "role": "assistant", "content": parts})
    return items
