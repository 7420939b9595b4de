"""JSON Schemas of ``POST /v1/responses`` (and the stored-response routes), for ``/openapi.json``.

They describe what ``responses_request`` enforces and what the endpoint returns, never more
strictly than the code checks (the fuzzer sends what they forbid and expects a 400); the tests
hold real answers and events to OpenAI's own published schemas as well.
"""

from __future__ import annotations

from gateway.contract.schemas import Schema

_UNSUPPORTED = {"description": "Not supported by this gateway: only null (or the default)."}


def _nullable(kind: str, **constraints: object) -> Schema:
    return {"type": [kind, "null"], **constraints}


RESPONSES_REQUEST: Schema = {
    "type": "object",
    "required": ["model", "input"],
    "additionalProperties": False,
    "properties": {
        "model": {
            "type": "string",
            "minLength": 1,
            "description": '"auto", an alias or a catalog id',
        },
        "input": {
            "anyOf": [
                {"type": "string"},
                {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 10_000,
                    "items": {"type": "object"},
                    "description": "Items: messages (user, assistant, system, developer), "
                    "function_call, function_call_output",
                },
            ]
        },
        "instructions": _nullable("string"),
        "tools": _nullable(
            "array",
            maxItems=128,
            items={"type": "object", "required": ["type"]},
            description="Function tools only; built-in tools are a 400 naming the tool",
        ),
        "tool_choice": {
            "anyOf": [
                {"type": "string", "enum": ["none", "auto", "required"]},
                {"type": "object"},
                {"type": "null"},
            ]
        },
        "parallel_tool_calls": _nullable("boolean"),
        "text": _nullable("object", description="format: text, json_object or json_schema"),
        "temperature": _nullable("number", minimum=0, maximum=2),
        "top_p": _nullable("number", minimum=0, maximum=1),
        "max_output_tokens": _nullable("integer", minimum=16),
        "metadata": _nullable(
            "object",
            maxProperties=16,
            propertyNames={"maxLength": 64},
            additionalProperties={"type": "string", "maxLength": 512},
        ),
        "stream": _nullable("boolean"),
        "stream_options": _nullable("object"),
        "store": _nullable("boolean"),
        "previous_response_id": _nullable("string", minLength=1),
        "include": _nullable("array", maxItems=0, description="Only empty: nothing extra to add"),
        "reasoning": _nullable("object", description="effort is passed on as reasoning_effort"),
        "user": _nullable("string"),
        "safety_identifier": _nullable("string"),
        "prompt_cache_key": _nullable("string"),
        "service_tier": _nullable("string"),
        **{
            name: _UNSUPPORTED
            for name in (
                "background",
                "conversation",
                "prompt",
                "context_management",
                "max_tool_calls",
                "top_logprobs",
                "prompt_cache_retention",
                "prompt_cache_options",
                "moderation",
                "truncation",
            )
        },
    },
}

_OUTPUT_ITEM: Schema = {
    "type": "object",
    "required": ["id", "type", "status"],
    "properties": {
        "id": {"type": "string"},
        "type": {"type": "string", "enum": ["message", "function_call"]},
        "status": {"type": "string", "enum": ["in_progress", "completed", "incomplete"]},
        "role": {"type": "string", "enum": ["assistant"]},
        "content": {"type": "array", "items": {"type": "object"}},
        "call_id": {"type": "string"},
        "name": {"type": "string"},
        "arguments": {"type": "string"},
    },
}

RESPONSE: Schema = {
    "type": "object",
    "required": ["id", "object", "created_at", "status", "model", "output", "error"],
    "properties": {
        "id": {"type": "string", "pattern": "^resp_"},
        "object": {"type": "string", "enum": ["response"]},
        "created_at": {"type": "integer"},
        "completed_at": {"type": ["integer", "null"]},
        "status": {"type": "string", "enum": ["completed", "incomplete", "in_progress"]},
        "model": {"type": "string", "description": "the catalog id that answered"},
        "output": {"type": "array", "items": _OUTPUT_ITEM},
        "error": {"type": "null"},
        "incomplete_details": {
            "anyOf": [
                {
                    "type": "object",
                    "properties": {
                        "reason": {
                            "type": "string",
                            "enum": ["max_output_tokens", "content_filter"],
                        }
                    },
                },
                {"type": "null"},
            ]
        },
        "usage": {
            "type": "object",
            "required": ["input_tokens", "output_tokens", "total_tokens"],
            "properties": {
                "input_tokens": {"type": "integer"},
                "output_tokens": {"type": "integer"},
                "total_tokens": {"type": "integer"},
                "input_tokens_details": {"type": "object"},
                "output_tokens_details": {"type": "object"},
            },
        },
        "previous_response_id": {"type": ["string", "null"]},
        "store": {"type": "boolean"},
        "metadata": {"type": "object"},
    },
}

RESPONSES_STREAM: Schema = {
    "type": "string",
    "description": "Server-sent events, each `event: <type>` and `data: <JSON>` with a "
    "`sequence_number`: response.created, response.in_progress, output items and their deltas, "
    "then response.completed or response.incomplete; a failure after the first event is one "
    "`error` event (type, code, message, param, sequence_number) and the stream ends.",
}

RESPONSE_DELETED: Schema = {
    "type": "object",
    "required": ["id", "object", "deleted"],
    "properties": {
        "id": {"type": "string"},
        "object": {"type": "string", "enum": ["response"]},
        "deleted": {"type": "boolean", "enum": [True]},
    },
}
