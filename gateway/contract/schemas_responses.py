"""JSON Schemas of ``POST /v1/responses`` (and the stored-response routes), for ``/openapi.json``.

They describe what ``responses_request`` enforces and what the endpoint returns, never more
strictly than the code checks (the fuzzer sends what they forbid and expects a 400); the tests
hold real answers and events to OpenAI's own published schemas as well.
"""

from __future__ import annotations

from gateway.contract.schemas import Schema

_NULL: Schema = {"type": "null"}
_TEXT: Schema = {"type": "string"}
_NAME: Schema = {"type": "string", "minLength": 1}
_ANY: Schema = {}


def _nullable(kind: str, **constraints: object) -> Schema:
    return {"type": [kind, "null"], **constraints}


def _part(kind: str, field: str) -> Schema:
    return {
        "type": "object",
        "required": ["type", field],
        "properties": {"type": {"const": kind}, field: _TEXT},
    }


_IMAGE: Schema = {
    "type": "object",
    "required": ["type", "image_url"],
    "properties": {
        "type": {"const": "input_image"},
        "image_url": _NAME,
        "detail": {"enum": ["auto", "low", "high", None]},
        "file_id": _NULL,
    },
}


def _message(roles: list[str], parts: list[Schema]) -> Schema:
    return {
        "type": "object",
        "required": ["role", "content"],
        "additionalProperties": False,
        "properties": {
            "type": {"const": "message"},
            "role": {"enum": roles},
            "content": {
                "anyOf": [_TEXT, {"type": "array", "minItems": 1, "items": {"anyOf": parts}}]
            },
            "id": _ANY,
            "status": _ANY,
            "phase": _ANY,
        },
    }


_FUNCTION_CALL: Schema = {
    "type": "object",
    "required": ["type", "call_id", "name", "arguments"],
    "additionalProperties": False,
    "properties": {
        "type": {"const": "function_call"},
        "call_id": _NAME,
        "name": _NAME,
        "arguments": _TEXT,
        "id": _ANY,
        "status": _ANY,
        "namespace": _NULL,
        "caller": _NULL,
    },
}
_FUNCTION_CALL_OUTPUT: Schema = {
    "type": "object",
    "required": ["type", "call_id", "output"],
    "additionalProperties": False,
    "properties": {
        "type": {"const": "function_call_output"},
        "call_id": _NAME,
        "output": {"anyOf": [_TEXT, {"type": "array", "items": _part("input_text", "text")}]},
        "id": _ANY,
        "status": _ANY,
        "name": _NULL,
        "namespace": _NULL,
        "caller": _NULL,
    },
}
INPUT_ITEM: Schema = {
    "anyOf": [
        _message(["user", "system", "developer"], [_part("input_text", "text"), _IMAGE]),
        _message(["assistant"], [_part("output_text", "text"), _part("refusal", "refusal")]),
        _FUNCTION_CALL,
        _FUNCTION_CALL_OUTPUT,
    ],
    "description": "messages (user, assistant, system, developer), function_call, "
    "function_call_output; other item types are a 400",
}
_FUNCTION_TOOL: Schema = {
    "type": "object",
    "required": ["type", "name"],
    "additionalProperties": False,
    "properties": {
        "type": {"const": "function"},
        "name": _NAME,
        "description": _nullable("string"),
        "parameters": _nullable("object"),
        "strict": _nullable("boolean"),
    },
    "description": "Function tools only; built-in tools are a 400 naming the tool",
}
_FORMATS: list[Schema] = [
    _NULL,
    {"type": "object", "required": ["type"], "properties": {"type": {"const": "text"}}},
    {"type": "object", "required": ["type"], "properties": {"type": {"const": "json_object"}}},
    {
        "type": "object",
        "required": ["type", "name", "schema"],
        "properties": {
            "type": {"const": "json_schema"},
            "name": _NAME,
            "schema": {"type": "object"},
            "description": _nullable("string"),
            "strict": _nullable("boolean"),
        },
    },
]
_UNSUPPORTED = (
    "conversation",
    "prompt",
    "context_management",
    "max_tool_calls",
    "top_logprobs",
    "prompt_cache_retention",
    "prompt_cache_options",
    "moderation",
)

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
                _TEXT,
                {"type": "array", "minItems": 1, "maxItems": 10_000, "items": INPUT_ITEM},
            ]
        },
        "instructions": _nullable("string"),
        "tools": _nullable("array", maxItems=128, items=_FUNCTION_TOOL),
        "tool_choice": {
            "anyOf": [
                {"enum": ["none", "auto", "required", None]},
                {
                    "type": "object",
                    "required": ["type", "name"],
                    "properties": {"type": {"const": "function"}, "name": _NAME},
                },
            ]
        },
        "parallel_tool_calls": _nullable("boolean"),
        "text": _nullable(
            "object",
            additionalProperties=False,
            properties={
                "format": {"anyOf": _FORMATS},
                "verbosity": {"enum": ["low", "medium", "high", None]},
            },
        ),
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
        "stream_options": _nullable(
            "object", additionalProperties=False, properties={"include_obfuscation": _ANY}
        ),
        "store": _nullable("boolean"),
        "previous_response_id": _nullable("string", minLength=1),
        "include": _nullable("array", maxItems=0, description="Only empty: nothing extra to add"),
        "reasoning": _nullable(
            "object",
            properties={"effort": _nullable("string")},
            additionalProperties=_NULL,
            description="effort is passed on as reasoning_effort; other keys only null",
        ),
        "user": _nullable("string"),
        "safety_identifier": _nullable("string"),
        "prompt_cache_key": _nullable("string"),
        "service_tier": _nullable("string"),
        "background": {"enum": [False, None]},
        "truncation": {"enum": ["disabled", None]},
        **{
            name: {**_NULL, "description": "Not supported by this gateway"} for name in _UNSUPPORTED
        },
    },
    "allOf": [
        {
            # stream_options only with stream: true
            "if": {
                "required": ["stream_options"],
                "properties": {"stream_options": {"type": "object"}},
            },
            "then": {"required": ["stream"], "properties": {"stream": {"const": True}}},
        }
    ],
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
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {
            "type": "string",
            "description": "The event's type: response.created, response.in_progress, output "
            "items and their deltas, then response.completed or response.incomplete; `error` "
            "for a failure after the first event (the stream ends there).",
        },
        "data": {
            "type": "string",
            "description": "The event as JSON, with that `type` and a `sequence_number`.",
        },
    },
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
