"""JSON Schemas of the public request and response bodies, for ``/openapi.json``.

They describe what the code enforces (``chat_validate``) and returns; tests check real answers
against them and against OpenAI's own published schemas.
"""

from __future__ import annotations

from typing import Any

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

_MESSAGE: Schema = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "minItems": 1, "items": {"type": "object"}},
                {"type": "null"},
            ]
        },
        "name": {"type": "string"},
        "tool_call_id": {"type": "string"},
        "tool_calls": {"type": "array", "items": {"type": "object"}},
    },
}

CHAT_REQUEST: Schema = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        "model": {"type": "string", "minLength": 1, "description": '"auto" or a catalog id'},
        "messages": {"type": "array", "minItems": 1, "items": _MESSAGE},
        "stream": {"type": ["boolean", "null"]},
        "stream_options": {
            "type": ["object", "null"],
            "properties": {"include_usage": {"type": "boolean"}},
        },
        "temperature": {"type": ["number", "null"], "minimum": 0, "maximum": 2},
        "top_p": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "max_tokens": {"type": ["integer", "null"], "minimum": 1},
        "max_completion_tokens": {"type": ["integer", "null"], "minimum": 1},
        "n": {"type": ["integer", "null"], "minimum": 1, "maximum": 128},
        "stop": {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "maxItems": 4, "items": {"type": "string"}},
                {"type": "null"},
            ]
        },
        "presence_penalty": {"type": ["number", "null"], "minimum": -2, "maximum": 2},
        "frequency_penalty": {"type": ["number", "null"], "minimum": -2, "maximum": 2},
        "seed": {"type": ["integer", "null"]},
        "user": {"type": ["string", "null"]},
        "tools": {"type": ["array", "null"], "items": {"type": "object"}},
        "tool_choice": {"anyOf": [{"type": "string"}, {"type": "object"}, {"type": "null"}]},
        "response_format": {"type": ["object", "null"]},
    },
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

CHAT_STREAM = {
    "type": "string",
    "description": "Server-sent events: `data: <chat.completion.chunk JSON>` lines, "
    "ending `data: [DONE]`; a failure after the first byte is an `data: <error envelope>` "
    "event and no `[DONE]`.",
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
