"""Responses input items -> chat messages: checked strictly, one ``details`` entry per problem.

``check_items`` turns a Responses ``input`` (a string, or a list of items: messages with the
roles user/assistant/system/developer, ``function_call`` and ``function_call_output``) into the
normalized items a stored response keeps; ``chat_messages`` turns normalized items into chat
completion messages. Items the gateway cannot serve (reasoning, item references, hosted tool
calls) are refused by name, never dropped: a conversation missing a turn would be answered
wrongly without anyone noticing. Fields of OpenAI's item schemas that only describe an item
(``id``, ``status``, ``phase``; ``annotations`` and ``logprobs`` of output text) are accepted
and not forwarded.
"""

from __future__ import annotations

from typing import Any

from gateway.contract.errors import MAX_LISTED_ISSUES

JSON = dict[str, Any]
Issues = list[dict[str, str]]

ROLES = ("user", "assistant", "system", "developer")
MAX_ITEMS = 10_000
# The keys each item type may carry: True for any value, False for null only (OpenAI's SDKs
# send them so when a client sends back the output items it was given).
_ITEM_KEYS: dict[str, dict[str, bool]] = {
    "message": {
        "type": True,
        "role": True,
        "content": True,
        "id": True,
        "status": True,
        "phase": True,  # commentary / final answer: describes the item, not forwarded
    },
    "function_call": {
        "type": True,
        "id": True,
        "call_id": True,
        "name": True,
        "arguments": True,
        "status": True,
        "namespace": False,
        "caller": False,
    },
    "function_call_output": {
        "type": True,
        "id": True,
        "call_id": True,
        "output": True,
        "status": True,
        "name": False,
        "namespace": False,
        "caller": False,
    },
}
_INPUT_PARTS = ("input_text", "input_image")
_OUTPUT_PARTS = ("output_text", "refusal")


def _text_of_part(part: JSON) -> str:
    return str(part.get("refusal") if part["type"] == "refusal" else part["text"])


def _check_part(part: Any, at: str, role: str, issues: Issues) -> JSON | None:
    """One content part, normalized to ``{type, text}`` / ``{type, image_url, detail}``."""
    kind = part.get("type") if isinstance(part, dict) else None
    allowed = _OUTPUT_PARTS if role == "assistant" else _INPUT_PARTS
    if not isinstance(kind, str) or kind not in allowed:
        issues.append(
            {"field": f"{at}.type", "issue": f"must be one of {', '.join(allowed)} for {role}"}
        )
        return None
    assert isinstance(part, dict)
    if kind == "input_image":
        if part.get("file_id") is not None:
            issues.append({"field": f"{at}.file_id", "issue": "files are not supported"})
            return None
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            issues.append({"field": f"{at}.image_url", "issue": "must be a URL or data URL"})
            return None
        detail = part.get("detail")
        if detail is None:
            detail = "auto"
        elif not isinstance(detail, str) or detail not in ("auto", "low", "high"):
            issues.append({"field": f"{at}.detail", "issue": "must be auto, low or high"})
            return None
        return {"type": "input_image", "image_url": url, "detail": detail}
    field = "refusal" if kind == "refusal" else "text"
    if not isinstance(part.get(field), str):
        issues.append({"field": f"{at}.{field}", "issue": "must be a string"})
        return None
    return {"type": kind, field: part[field]}


def _check_message(item: JSON, at: str, issues: Issues) -> JSON | None:
    role = item.get("role")
    if not isinstance(role, str) or role not in ROLES:
        issues.append({"field": f"{at}.role", "issue": f"must be one of {', '.join(ROLES)}"})
        return None
    content = item.get("content")
    if isinstance(content, str):
        return {"type": "message", "role": role, "content": content}
    if not isinstance(content, list) or not content:
        issues.append(
            {"field": f"{at}.content", "issue": "must be a string or a non-empty array of parts"}
        )
        return None
    parts = [
        _check_part(part, f"{at}.content[{i}]", role, issues) for i, part in enumerate(content)
    ]
    if any(part is None for part in parts):
        return None
    return {"type": "message", "role": role, "content": parts}


def _check_call(item: JSON, at: str, issues: Issues) -> JSON | None:
    ok = True
    for key in ("call_id", "name", "arguments"):
        if not isinstance(item.get(key), str) or (key != "arguments" and not item[key]):
            issues.append({"field": f"{at}.{key}", "issue": "is required and must be a string"})
            ok = False
    if not ok:
        return None
    return {
        "type": "function_call",
        "call_id": item["call_id"],
        "name": item["name"],
        "arguments": item["arguments"],
    }


def _check_call_output(item: JSON, at: str, issues: Issues) -> JSON | None:
    call_id = item.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        issues.append({"field": f"{at}.call_id", "issue": "is required and must be a string"})
        return None
    output = item.get("output")
    if isinstance(output, list):
        texts = []
        for index, part in enumerate(output):
            if not isinstance(part, dict) or part.get("type") != "input_text":
                issues.append(
                    {"field": f"{at}.output[{index}].type", "issue": "only input_text is supported"}
                )
                return None
            if not isinstance(part.get("text"), str):
                issues.append({"field": f"{at}.output[{index}].text", "issue": "must be a string"})
                return None
            texts.append(part["text"])
        output = "".join(texts)
    if not isinstance(output, str):
        issues.append({"field": f"{at}.output", "issue": "must be a string or input_text parts"})
        return None
    return {"type": "function_call_output", "call_id": call_id, "output": output}


_CHECKS = {
    "message": _check_message,
    "function_call": _check_call,
    "function_call_output": _check_call_output,
}


def check_items(raw: Any, issues: Issues) -> list[JSON]:
    """The normalized items of ``input`` (appending to ``issues`` for what is wrong)."""
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    if not isinstance(raw, list) or not raw:
        issues.append({"field": "input", "issue": "must be a string or a non-empty array of items"})
        return []
    if len(raw) > MAX_ITEMS:
        issues.append({"field": "input", "issue": f"must have at most {MAX_ITEMS} items"})
        return []
    items: list[JSON] = []
    for index, item in enumerate(raw):
        if len(issues) > MAX_LISTED_ISSUES:
            break
        at = f"input[{index}]"
        if not isinstance(item, dict):
            issues.append({"field": at, "issue": "must be an object"})
            continue
        kind = item.get("type", "message")  # a bare {role, content} is a message
        if not isinstance(kind, str) or kind not in _CHECKS:
            shown = kind if isinstance(kind, str) else "this"
            issues.append(
                {
                    "field": f"{at}.type",
                    "issue": f"{shown!s:.40} items are not supported "
                    "(supported: message, function_call, function_call_output)",
                }
            )
            continue
        keys = _ITEM_KEYS[kind]
        extra = [
            key
            for key, value in item.items()
            if key not in keys or (not keys[key] and value is not None)
        ]
        if extra:
            issues.extend({"field": f"{at}.{key}", "issue": "is not supported"} for key in extra)
            continue
        checked = _CHECKS[kind](item, at, issues)
        if checked is not None:
            items.append(checked)
    return items


def _chat_content(role: str, content: str | list[JSON]) -> str | list[JSON]:
    if isinstance(content, str):
        return content
    if role == "assistant" or all(part["type"] == "input_text" for part in content):
        if len(content) == 1 or role == "assistant":
            return "".join(_text_of_part(part) for part in content)
        return [{"type": "text", "text": part["text"]} for part in content]
    parts: list[JSON] = []
    for part in content:
        if part["type"] == "input_image":
            image = {"url": part["image_url"], "detail": part["detail"]}
            parts.append({"type": "image_url", "image_url": image})
        else:
            parts.append({"type": "text", "text": part["text"]})
    return parts


def chat_messages(instructions: str | None, items: list[JSON]) -> list[JSON]:
    """Chat completion messages for normalized items, ``instructions`` first as a system
    message. Consecutive function calls (and the assistant text just before them) become one
    assistant message with ``tool_calls``, as chat expects."""
    messages: list[JSON] = []
    if instructions:
        messages.append({"role": "system", "content": instructions})
    for item in items:
        kind = item["type"]
        if kind == "message":
            role = item["role"]
            messages.append({"role": role, "content": _chat_content(role, item["content"])})
        elif kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
                if last.get("content") == "":
                    last["content"] = None
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        else:
            messages.append(
                {"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]}
            )
    return messages
