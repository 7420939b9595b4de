"""JSON Schemas of the public request and response bodies, for ``/openapi.json``.

They describe what the code enforces (``chat_validate``: every rule JSON Schema can state,
cross-field ones included, so a client generated from the spec never sends what is refused) and
returns; tests check real answers against them and against OpenAI's own published schemas.
"""

from __future__ import annotations

from typing import Any

from gateway.contract.chat_validate import (
    CONTENT_PART_TYPES,
    MAX_MESSAGES,
    MAX_STOP_SEQUENCES,
    ROLES,
)
from providers.base import MAX_JSON_INT, MIN_JSON_INT

Schema = dict[str, Any]

ERROR_ENVELOPE: Schema = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "type", "retryable", "request_id", "details"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "type": {"type": "string"},
                "retryable": {"type": "boolean"},
                "request_id": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "details": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["field", "issue"],
                        "properties": {"field": {"type": "string"}, "issue": {"type": "string"}},
                    },
                },
            },
        }
    },
}

_CONTENT_PART: Schema = {
    "type": "object",
    "required": ["type"],
    "properties": {"type": {"enum": sorted(CONTENT_PART_TYPES)}},
    # A text part carries its text.
    "if": {"properties": {"type": {"const": "text"}}},
    "then": {"required": ["text"], "properties": {"text": {"type": "string"}}},
}

_MESSAGE: Schema = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "role": {"type": "string", "enum": sorted(ROLES)},
        "content": {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "minItems": 1, "items": _CONTENT_PART},
                {"type": "null"},
            ]
        },
        "name": {"type": ["string", "null"]},
        "tool_call_id": {"type": "string"},
        "tool_calls": {"type": "array", "items": {"type": "object"}},
    },
    "allOf": [
        # Only an assistant message that calls tools may go without content.
        {
            "if": {
                "required": ["role", "tool_calls"],
                "properties": {"role": {"const": "assistant"}, "tool_calls": {"minItems": 1}},
            },
            "else": {"required": ["content"], "properties": {"content": {"not": {"type": "null"}}}},
        },
        {
            "if": {"properties": {"role": {"const": "tool"}}},
            "then": {"required": ["tool_call_id"]},
        },
    ],
}


def _set(name: str, schema: Schema) -> Schema:
    """``name`` is present and not null, and matches ``schema``."""
    return {
        "required": [name],
        "properties": {name: {"allOf": [{"not": {"type": "null"}}, schema]}},
    }


CHAT_REQUEST: Schema = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        "model": {"type": "string", "minLength": 1, "description": '"auto" or a catalog id'},
        "messages": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_MESSAGES,
            "items": _MESSAGE,
        },
        "stream": {"type": ["boolean", "null"]},
        "stream_options": {
            "type": ["object", "null"],
            "properties": {"include_usage": {"type": ["boolean", "null"]}},
            "description": "Only with stream: true.",
        },
        "temperature": {"type": ["number", "null"], "minimum": 0, "maximum": 2},
        "top_p": {
            "type": ["number", "null"],
            "minimum": 0,
            "maximum": 1,
            "description": "Not together with temperature, unless one of the two is 1.",
        },
        "max_tokens": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_JSON_INT},
        "max_completion_tokens": {
            "type": ["integer", "null"],
            "minimum": 1,
            "maximum": MAX_JSON_INT,
        },
        "n": {"type": ["integer", "null"], "minimum": 1, "maximum": 128},
        "stop": {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "maxItems": MAX_STOP_SEQUENCES, "items": {"type": "string"}},
                {"type": "null"},
            ]
        },
        "presence_penalty": {"type": ["number", "null"], "minimum": -2, "maximum": 2},
        "frequency_penalty": {"type": ["number", "null"], "minimum": -2, "maximum": 2},
        "seed": {"type": ["integer", "null"], "minimum": MIN_JSON_INT, "maximum": MAX_JSON_INT},
        "user": {"type": ["string", "null"]},
        "logprobs": {"type": ["boolean", "null"]},
        "top_logprobs": {"type": ["integer", "null"], "minimum": 0, "maximum": 20},
        "logit_bias": {"type": ["object", "null"]},
        "tools": {"type": ["array", "null"], "items": {"type": "object"}},
        "tool_choice": {"anyOf": [{"type": "string"}, {"type": "object"}, {"type": "null"}]},
        "parallel_tool_calls": {"type": ["boolean", "null"]},
        "response_format": {"type": ["object", "null"]},
        "metadata": {"type": ["object", "null"]},
    },
    "allOf": [
        # temperature and top_p: not both, unless one of them is 1 (OpenAI's default).
        {
            "not": {
                "allOf": [
                    _set("temperature", {"not": {"const": 1}}),
                    _set("top_p", {"not": {"const": 1}}),
                ]
            }
        },
        # stream_options needs stream: true.
        {"if": _set("stream_options", {}), "then": _set("stream", {"const": True})},
    ],
    "additionalProperties": True,
    "examples": [{"model": "auto", "messages": [{"role": "user", "content": "Say hi."}]}],
}

_USAGE: Schema = {
    "type": "object",
    "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
    "properties": {
        "prompt_tokens": {"type": "integer"},
        "completion_tokens": {"type": "integer"},
        "total_tokens": {"type": "integer"},
    },
}

CHAT_RESPONSE: Schema = {
    "type": "object",
    "required": ["id", "object", "created", "model", "choices"],
    "properties": {
        "id": {"type": "string"},
        "object": {"type": "string", "enum": ["chat.completion"]},
        "created": {"type": "integer"},
        "model": {"type": "string", "description": "the catalog model that answered"},
        "choices": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "message", "finish_reason"],
                "properties": {
                    "index": {"type": "integer"},
                    "message": {"type": "object"},
                    "finish_reason": {"type": ["string", "null"]},
                },
            },
        },
        "usage": _USAGE,
    },
}

# One server-sent event of a chat stream (how schemathesis and OpenAPI 3.2's itemSchema read an
# event-stream schema): its data is a chat.completion.chunk, the final [DONE], or, after a
# failure past the first byte, the error envelope (and no [DONE]).
CHAT_STREAM: Schema = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "type": "string",
            "description": "A chat.completion.chunk as JSON, `[DONE]` last, or the error "
            "envelope of a failure after the first byte (then no `[DONE]`).",
        }
    },
}

MODEL: Schema = {
    "type": "object",
    "required": ["id", "object", "created", "owned_by", "capabilities", "status"],
    "properties": {
        "id": {"type": "string"},
        "object": {"type": "string", "enum": ["model"]},
        "created": {"type": "integer"},
        "owned_by": {"type": "string"},
        "capabilities": {
            "type": "array",
            "items": {
                "type": "string",
                "enum": [
                    "chat",
                    "chat.stream",
                    "embeddings",
                    "music.text",
                    "music.reference_audio",
                    "image.text",
                    "image.edit",
                ],
            },
        },
        "status": {"type": "string", "enum": ["available", "preview"]},
        "context_window": {"type": ["integer", "null"]},
        "max_output_tokens": {"type": ["integer", "null"]},
    },
}

MODEL_LIST: Schema = {
    "type": "object",
    "required": ["object", "data"],
    "properties": {
        "object": {"type": "string", "enum": ["list"]},
        "data": {"type": "array", "items": MODEL},
    },
}

HEALTH: Schema = {
    "type": "object",
    "required": ["status", "version"],
    "properties": {"status": {"type": "string", "enum": ["ok"]}, "version": {"type": "string"}},
}
