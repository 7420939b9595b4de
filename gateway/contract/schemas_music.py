"""JSON Schemas of the music, upload, artifact and task bodies, for ``/openapi.json``.

They mirror what ``music_validate``, ``uploads`` and ``tasks_api`` enforce and what
``public_task`` and ``public_artifact`` return; tests check real answers against them.
"""

from __future__ import annotations

from typing import Any

from gateway.artifacts.media import EXTENSIONS, IMAGE_TYPES
from gateway.contract.ids import TASK_ID
from gateway.contract.music_validate import (
    DEFAULT_DURATION_S,
    MAX_LYRICS_CHARS,
    MAX_PROMPT_CHARS,
    MAX_SEED,
)
from providers.music.base import REFERENCE_MODES

Schema = dict[str, Any]
AUDIO_TYPES = tuple(EXTENSIONS)
# A character that is not whitespace as Python's str.strip() sees it (what music_validate
# checks), spelled out because regex engines disagree on \s (ECMA's lacks \x1c-\x1f and \x85).
NOT_ONLY_SPACE = (
    r"[^\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
)

MUSIC_REQUEST: Schema = {
    "type": "object",
    "required": ["model", "prompt"],
    "additionalProperties": False,
    "properties": {
        "model": {
            "type": "string",
            "minLength": 1,
            "description": 'A catalog id with music ability, or "auto".',
        },
        "prompt": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_PROMPT_CHARS,
            "pattern": NOT_ONLY_SPACE,
        },
        "lyrics": {"type": ["string", "null"], "maxLength": MAX_LYRICS_CHARS},
        "instrumental": {"type": "boolean", "default": False},
        "duration_seconds": {
            "type": "number",
            "minimum": 1,
            "maximum": 600,
            "default": DEFAULT_DURATION_S,
            "description": "Bounded further by the model (see its max duration).",
        },
        "format": {"type": "string", "minLength": 1, "default": "wav", "examples": ["wav", "mp3"]},
        "seed": {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_SEED},
        "reference_artifact_id": {
            "type": ["string", "null"],
            "minLength": 1,
            "description": "An uploaded recording; makes this a music.reference_audio task.",
        },
        "reference_mode": {"type": ["string", "null"], "enum": [*REFERENCE_MODES, None]},
        "reference_strength": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
    },
    "allOf": [
        # An instrumental has no lyrics.
        {
            "not": {
                "required": ["instrumental", "lyrics"],
                "properties": {"instrumental": {"const": True}, "lyrics": {"minLength": 1}},
            }
        },
        # reference_mode and reference_strength refine a reference recording.
        *(
            {
                "if": {"required": [name], "properties": {name: {"not": {"type": "null"}}}},
                "then": {
                    "required": ["reference_artifact_id"],
                    "properties": {"reference_artifact_id": {"type": "string"}},
                },
            }
            for name in ("reference_mode", "reference_strength")
        ),
    ],
    "examples": [
        {"model": "auto", "prompt": "calm piano ballad in a minor key", "duration_seconds": 5}
    ],
}

TASK_ARTIFACT: Schema = {
    "type": "object",
    "required": ["artifact_id", "content_type", "bytes", "duration_seconds"],
    "properties": {
        "artifact_id": {"type": "string"},
        "content_type": {"type": "string"},
        "bytes": {"type": "integer"},
        "duration_seconds": {"type": ["number", "null"]},
    },
}

# Every task type: music from a prompt or a reference recording, and image generations and
# edits asked for with ``Prefer: respond-async``.
TASK_TYPES = ("music.text", "music.reference_audio", "image.generation", "image.edit")

TASK: Schema = {
    "type": "object",
    "required": ["task_id", "object", "type", "status", "model", "created_at", "updated_at"],
    "properties": {
        "task_id": {"type": "string"},
        "object": {"const": "task"},
        "type": {"enum": list(TASK_TYPES)},
        "status": {"enum": ["queued", "running", "succeeded", "failed", "canceled"]},
        "model": {"type": "string"},
        "created_at": {"type": "integer"},
        "updated_at": {"type": "integer"},
        "progress": {"type": "number", "minimum": 0, "maximum": 1},
        "result": {
            "type": "object",
            "required": ["artifacts"],
            "properties": {"artifacts": {"type": "array", "items": TASK_ARTIFACT}},
        },
        "error": {
            "type": "object",
            "required": ["code", "message", "retryable"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "retryable": {"type": "boolean"},
            },
        },
    },
}

TASK_LIST: Schema = {
    "type": "object",
    "required": ["object", "data", "has_more", "next_cursor"],
    "properties": {
        "object": {"const": "list"},
        "data": {"type": "array", "items": TASK},
        "has_more": {"type": "boolean"},
        "next_cursor": {"type": ["string", "null"]},
    },
}

ARTIFACT: Schema = {
    "type": "object",
    "required": [
        "artifact_id",
        "object",
        "kind",
        "filename",
        "content_type",
        "bytes",
        "sha256",
        "created_at",
        "expires_at",
    ],
    "properties": {
        "artifact_id": {"type": "string"},
        "object": {"const": "artifact"},
        "kind": {"enum": ["upload", "output"]},
        "filename": {"type": "string"},
        "content_type": {"type": "string"},
        "bytes": {"type": "integer"},
        "sha256": {"type": "string"},
        "created_at": {"type": "integer"},
        "expires_at": {"type": "integer"},
        "duration_seconds": {"type": "number"},
        "task_id": {"type": "string"},
    },
}

UPLOAD_REQUEST: Schema = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {
            "type": "string",
            "format": "binary",
            "description": "One audio file (WAV, MP3, FLAC, OGG, AIFF, M4A/AAC) or image (PNG,"
            " JPEG, WebP; at most 64 megapixels), up to 100 MB.",
        }
    },
}

# The types the gateway recognises by their first bytes; any other file is 415.
UPLOAD_ENCODING: Schema = {"file": {"contentType": ", ".join((*AUDIO_TYPES, *IMAGE_TYPES))}}

TASK_QUERY: list[Schema] = [
    {"name": "status", "in": "query", "required": False, "schema": TASK["properties"]["status"]},
    {"name": "type", "in": "query", "required": False, "schema": TASK["properties"]["type"]},
    {
        "name": "after",
        "in": "query",
        "required": False,
        "description": "The next_cursor of the previous page.",
        "schema": {"type": "string", "pattern": f"^{TASK_ID.pattern}$"},
    },
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
    },
]
