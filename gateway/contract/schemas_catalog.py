"""The request schemas of chat, Responses, embeddings and music, completed with what the
configured catalog decides.

Which ``model`` values may chat or stream or embed (and how many ``dimensions`` they give), and
what each music model accepts (formats, longest
duration, lyrics, reference audio and its modes), depend on the configuration, so the static
schemas of ``schemas`` and ``schemas_music`` get one rule per model name (catalog id, alias,
``auto``) when the route table is built. A name the catalog does not know stays unconstrained:
the gateway answers it with 404. What a key may use (403, 404) is not the spec's to say.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from gateway.config.settings import AUTO_MODEL, ModelSettings
from gateway.contract.music_validate import DEFAULT_DURATION_S, DEFAULT_FORMAT
from gateway.contract.schemas import CHAT_REQUEST, Schema
from gateway.contract.schemas_embeddings import EMBEDDINGS_REQUEST
from gateway.contract.schemas_music import MUSIC_REQUEST
from gateway.contract.schemas_responses import RESPONSES_REQUEST
from gateway.policy.routing import Catalog
from providers.music.base import MusicAdapter

_NULL = {"type": "null"}


def _names(catalog: Catalog) -> Iterator[tuple[str, list[ModelSettings]]]:
    """Every name a client may send, with the catalog models it may resolve to."""
    yield AUTO_MODEL, [catalog.models[m] for m in catalog.auto]
    for model_id, model in catalog.models.items():
        yield model_id, [model]
    for alias, target in catalog.aliases.items():
        yield alias, [catalog.models[target]]


def _named(names: list[str]) -> Schema:
    return {"required": ["model"], "properties": {"model": {"enum": names}}}


def chat_request_schema(catalog: Catalog, base: Schema = CHAT_REQUEST) -> Schema:
    """``CHAT_REQUEST`` naming the models that cannot answer (capability ``chat``) and those
    that cannot stream (``chat.stream``): routing asks for the one the request needs."""
    no_chat = [n for n, models in _names(catalog) if not _can(models, "chat")]
    no_stream = [n for n, models in _names(catalog) if not _can(models, "chat.stream")]
    streamed = {"required": ["stream"], "properties": {"stream": {"const": True}}}
    rules = list(base["allOf"])
    if no_chat:
        rules.append({"if": _named(no_chat), "then": streamed})
    if no_stream:
        rules.append({"not": {"allOf": [_named(no_stream), streamed]}})
    return {**base, "allOf": rules}


def responses_request_schema(catalog: Catalog) -> Schema:
    """``RESPONSES_REQUEST`` with chat's model rules: chat models serve Responses."""
    return chat_request_schema(catalog, RESPONSES_REQUEST)


def embeddings_request_schema(catalog: Catalog) -> Schema:
    """``EMBEDDINGS_REQUEST`` naming the models that cannot embed, and for each name whose
    models all state their vector size, the most ``dimensions`` one of them gives."""
    rules: list[Schema] = []
    cannot = [n for n, models in _names(catalog) if not _can(models, "embeddings")]
    if cannot:
        rules.append({"not": _named(cannot)})
    for name, models in _names(catalog):
        sizes = [m.dimensions for m in models if "embeddings" in m.capabilities]
        if sizes and None not in sizes:
            largest = max(size for size in sizes if size is not None)
            rules.append(
                {
                    "if": _named([name]),
                    "then": {"properties": {"dimensions": {"maximum": largest}}},
                }
            )
    return {**EMBEDDINGS_REQUEST, "allOf": [*EMBEDDINGS_REQUEST.get("allOf", []), *rules]}


def _can(models: list[ModelSettings], capability: str) -> bool:
    return any(capability in model.capabilities for model in models)


def _any_case(word: str) -> str:
    """A regex of ``word`` in any letter case (the gateway lower-cases ``format``)."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)


def _served_by(adapter: MusicAdapter, reference: bool) -> Schema:
    """What a request must look like for ``adapter`` to take it (``music_validate._refusal``)."""
    formats = "|".join(_any_case(f) for f in sorted(adapter.formats))
    properties: dict[str, Any] = {
        "format": {"pattern": f"^(?:{formats})$"},
        "duration_seconds": {"maximum": adapter.max_duration_seconds},
    }
    required = []
    if DEFAULT_FORMAT not in adapter.formats:
        required.append("format")
    if adapter.max_duration_seconds < DEFAULT_DURATION_S:
        required.append("duration_seconds")
    if not getattr(adapter, "supports_lyrics", False):
        properties["lyrics"] = {"anyOf": [_NULL, {"maxLength": 0}]}
    if reference:
        modes = sorted(adapter.reference_modes)
        properties["reference_mode"] = {"anyOf": [_NULL, {"enum": modes}]}
    return {"required": required, "properties": properties}


def _unique(schemas: list[Schema]) -> list[Schema]:
    kept: list[Schema] = []
    for schema in schemas:
        if schema not in kept:
            kept.append(schema)
    return kept


def _music_branch(
    models: list[ModelSettings], adapters: Mapping[str, MusicAdapter], reference: bool
) -> Schema | None:
    """The requests of one kind (reference audio or not) some deployment of ``models`` serves."""
    capability = "music.reference_audio" if reference else "music.text"
    served = [
        _served_by(adapters[d.provider], reference)
        for m in models
        if capability in m.capabilities
        for d in m.deployments
        if d.provider in adapters and (adapters[d.provider].reference_modes or not reference)
    ]
    if not served:
        return None
    given = {"type": "string"}
    reference_id = (
        {"required": ["reference_artifact_id"], "properties": {"reference_artifact_id": given}}
        if reference
        else {"properties": {"reference_artifact_id": _NULL}}
    )
    return {"allOf": [reference_id, {"anyOf": _unique(served)}]}


def music_request_schema(catalog: Catalog, adapters: Mapping[str, MusicAdapter]) -> Schema:
    """``MUSIC_REQUEST`` with, for every model name, what its deployments can serve."""
    rules = list(MUSIC_REQUEST["allOf"])
    for name, models in _names(catalog):
        branches = [b for r in (False, True) if (b := _music_branch(models, adapters, r))]
        served: Schema = {"anyOf": branches} if branches else {"not": {}}
        rules.append({"if": _named([name]), "then": served})
    return {**MUSIC_REQUEST, "allOf": rules}
