"""JSON Schemas of the image bodies, for ``/openapi.json``, with the catalog's rules.

``IMAGES_REQUEST`` mirrors what ``images_validate`` enforces on a generation; ``IMAGES_RESPONSE``
is what ``endpoints.images`` answers (OpenAI's ``ImagesResponse``; tests validate answers against
both this and OpenAI's own). ``images_request_schema`` adds, per model name the client may send,
what its deployments' adapters can make (sizes, formats, ``n``, transparency), as
``schemas_catalog`` does for music; a name the catalog does not know stays unconstrained.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.config.settings import AUTO_MODEL, ModelSettings
from gateway.contract.images_validate import (
    BACKGROUNDS,
    MAX_N,
    MAX_PROMPT_CHARS,
    MAX_SEED,
    MODERATIONS,
    QUALITIES,
    RESPONSE_FORMATS,
    STYLES,
)
from gateway.contract.schemas_music import NOT_ONLY_SPACE
from gateway.policy.routing import Catalog
from providers.images.base import FORMATS, ImagesAdapter

Schema = dict[str, Any]


def _enum(values: tuple[str, ...], default: str) -> Schema:
    return {"type": ["string", "null"], "enum": [*values, None], "default": default}


IMAGES_REQUEST: Schema = {
    "type": "object",
    "required": ["prompt"],
    "additionalProperties": False,
    "properties": {
        "model": {
            "type": ["string", "null"],
            "minLength": 1,
            "default": AUTO_MODEL,
            "description": 'A catalog id with image ability, or "auto".',
        },
        "prompt": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_PROMPT_CHARS,
            "pattern": NOT_ONLY_SPACE,
            "examples": ["a red sun over blue mountains at sunset"],
        },
        "n": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_N, "default": 1},
        "size": {
            "type": ["string", "null"],
            "minLength": 1,
            "default": "auto",
            "description": "WIDTHxHEIGHT or auto; the model decides which.",
        },
        "quality": _enum(QUALITIES, "auto"),
        "response_format": _enum(RESPONSE_FORMATS, "b64_json"),
        "output_format": _enum(FORMATS, "png"),
        "output_compression": {"type": ["integer", "null"], "minimum": 0, "maximum": 100},
        "background": _enum(BACKGROUNDS, "auto"),
        "moderation": _enum(MODERATIONS, "auto"),
        "style": _enum(STYLES, "vivid"),
        "user": {"type": ["string", "null"]},
        "seed": {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_SEED},
        "stream": {"enum": [False, None], "description": "Streamed images are not supported."},
        "partial_images": {"enum": [0, None]},
    },
    "allOf": [
        # A transparent background needs an image format with alpha.
        {
            "not": {
                "required": ["background", "output_format"],
                "properties": {
                    "background": {"const": "transparent"},
                    "output_format": {"const": "jpeg"},
                },
            }
        }
    ],
}

IMAGE_ITEM: Schema = {
    "type": "object",
    "properties": {
        "b64_json": {"type": "string", "contentEncoding": "base64"},
        "url": {
            "type": "string",
            "format": "uri",
            "description": "This gateway's /v1/artifacts/{id}/content (owner-only).",
        },
        "revised_prompt": {"type": "string"},
    },
}

IMAGES_RESPONSE: Schema = {
    "type": "object",
    "required": ["created", "data"],
    "properties": {
        "created": {"type": "integer"},
        "data": {"type": "array", "items": IMAGE_ITEM},
        "background": {"enum": ["transparent", "opaque"]},
        "output_format": {"enum": list(FORMATS)},
    },
}


def _names(catalog: Catalog) -> list[tuple[str, list[ModelSettings]]]:
    names = [(AUTO_MODEL, [catalog.models[m] for m in catalog.auto])]
    names += [(model_id, [model]) for model_id, model in catalog.models.items()]
    names += [(alias, [catalog.models[t]]) for alias, t in catalog.aliases.items()]
    return names


def _served_by(adapter: ImagesAdapter) -> Schema:
    """What a request must look like for ``adapter`` to take it (``images_validate._refusal``)."""
    # A null (or absent) size is "auto", a null format "png": allowed where the adapter has them.
    sizes: list[str | None] = [*sorted(adapter.sizes)]
    formats: list[str | None] = [*sorted(adapter.formats)]
    if "auto" in adapter.sizes:
        sizes.append(None)
    if "png" in adapter.formats:
        formats.append(None)
    properties: dict[str, Any] = {
        "size": {"enum": sizes},
        "output_format": {"enum": formats},
        "n": {"maximum": adapter.max_n},
    }
    if not adapter.supports_transparency:
        properties["background"] = {"not": {"const": "transparent"}}
    required = [] if "png" in adapter.formats else ["output_format"]
    if "auto" not in adapter.sizes:
        required.append("size")
    return {"required": required, "properties": properties}


def images_request_schema(
    catalog: Catalog, adapters: Mapping[str, ImagesAdapter], capability: str = "image.text"
) -> Schema:
    """``IMAGES_REQUEST`` with, for every model name, what its deployments can serve."""
    rules = list(IMAGES_REQUEST["allOf"])
    for name, models in _names(catalog):
        served: list[Schema] = []
        for model in models:
            if capability not in model.capabilities:
                continue
            for deployment in model.deployments:
                adapter = adapters.get(deployment.provider)
                if adapter is not None and (rule := _served_by(adapter)) not in served:
                    served.append(rule)
        then: Schema = {"anyOf": served} if served else {"not": {}}
        named = {"properties": {"model": {"const": name}}, "required": ["model"]}
        rules.append({"if": named, "then": then})
        if name == AUTO_MODEL:
            # No model (or null) means auto too.
            absent = {"not": {"required": ["model"], "properties": {"model": {"type": "string"}}}}
            rules.append({"if": absent, "then": then})
    return {**IMAGES_REQUEST, "allOf": rules}


_BINARY: Schema = {"type": "string", "format": "binary"}
_EDIT_ONLY: Schema = {
    "strength": {
        "type": ["number", "null"],
        "minimum": 0,
        "maximum": 1,
        "description": "How far from the input: 0 keeps it, 1 follows the prompt.",
    },
    "image_artifact_id": {
        "type": ["string", "null"],
        "minLength": 1,
        "description": "An uploaded image of this key, instead of an image part.",
    },
}
EDITS_REQUEST: Schema = {
    **IMAGES_REQUEST,
    "properties": {
        **{k: v for k, v in IMAGES_REQUEST["properties"].items() if k not in ("stream",)},
        "prompt": {
            "type": "string",
            "maxLength": MAX_PROMPT_CHARS,
            "description": "May be blank: the input is then restyled in a palette of its own.",
        },
        "image": {**_BINARY, "description": "The image to edit (repeat the part, or send "
                  "image[] parts, for up to 16; further images lend their colours)."},
        "mask": {**_BINARY, "description": "Transparent pixels are edited, opaque ones kept."},
        **_EDIT_ONLY,
    },
    # image_artifact_id may stand in for the image part; the schema, which cannot say "one of
    # the two" in a form the fuzzers respect, names the part as the way to send it.
    "required": ["prompt", "image"],
}  # fmt: skip
# Each file part's types: the gateway recognises them by their first bytes; others are 415.
EDITS_ENCODING: Schema = {
    "image": {"contentType": "image/png, image/jpeg, image/webp"},
    "mask": {"contentType": "image/png, image/webp"},
}


def edits_request_schema(catalog: Catalog, adapters: Mapping[str, ImagesAdapter]) -> Schema:
    """``EDITS_REQUEST`` with each model name's rules (capability ``image.edit``)."""
    rules = images_request_schema(catalog, adapters, "image.edit")["allOf"]
    rules = rules[len(IMAGES_REQUEST["allOf"]) :]
    return {**EDITS_REQUEST, "allOf": [*EDITS_REQUEST["allOf"], *rules]}
