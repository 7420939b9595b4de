"""JSON Schemas of ``POST /v1/embeddings``, for ``/openapi.json``.

They describe what ``embeddings_validate`` enforces and what the endpoint returns; tests check
real answers against them and against OpenAI's own published schemas.
"""

from __future__ import annotations

from gateway.contract.embeddings_validate import ENCODING_FORMATS, MAX_INPUTS, MAX_TOKEN_ID
from gateway.contract.schemas import Schema

_TOKEN: Schema = {"type": "integer", "minimum": 0, "maximum": MAX_TOKEN_ID}
_TOKENS: Schema = {"type": "array", "minItems": 1, "items": _TOKEN}

EMBEDDINGS_REQUEST: Schema = {
    "type": "object",
    "required": ["model", "input"],
    "properties": {
        "model": {
            "type": "string",
            "minLength": 1,
            "description": '"auto", an alias or a catalog id with the embeddings capability',
        },
        "input": {
            "anyOf": [
                {"type": "string", "minLength": 1},
                {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_INPUTS,
                    "items": {"type": "string", "minLength": 1},
                },
                {**_TOKENS, "maxItems": MAX_INPUTS},
                {"type": "array", "minItems": 1, "maxItems": MAX_INPUTS, "items": _TOKENS},
            ]
        },
        "encoding_format": {"enum": [*ENCODING_FORMATS, None], "default": "float"},
        "dimensions": {"type": ["integer", "null"], "minimum": 1},
        "user": {"type": ["string", "null"]},
    },
    "additionalProperties": True,
    "examples": [{"model": "auto", "input": "The quick brown fox"}],
}

EMBEDDINGS_RESPONSE: Schema = {
    "type": "object",
    "required": ["object", "data", "model", "usage"],
    "properties": {
        "object": {"type": "string", "enum": ["list"]},
        "data": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["object", "index", "embedding"],
                "properties": {
                    "object": {"type": "string", "enum": ["embedding"]},
                    "index": {"type": "integer", "minimum": 0},
                    "embedding": {
                        "anyOf": [
                            {"type": "array", "items": {"type": "number"}},
                            {
                                "type": "string",
                                "contentEncoding": "base64",
                                "description": "encoding_format base64: little-endian float32",
                            },
                        ]
                    },
                },
            },
        },
        "model": {"type": "string", "description": "the catalog model that answered"},
        "usage": {
            "type": "object",
            "required": ["prompt_tokens", "total_tokens"],
            "properties": {
                "prompt_tokens": {"type": "integer"},
                "total_tokens": {"type": "integer"},
            },
        },
    },
}
