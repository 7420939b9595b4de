"""The catalog's sections: ``[models.ID]`` (with their deployments), ``[routing]`` and
``[keys.NAME]``.

These are read explicitly rather than by the data-driven reader, because every one of them
refers to another section: a deployment to its provider (and that provider's adapters to the
model's capabilities), a route or alias to its model, a key to the models it may use.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.config.reader import ConfigError, Table, child_path
from providers.base import ProviderSettings
from providers.registry import ADAPTERS, EMBEDDING_KINDS, IMAGE_ADAPTERS, MUSIC_ADAPTERS

CAPABILITIES = (
    "chat",
    "chat.stream",
    "embeddings",
    "music.text",
    "music.reference_audio",
    "image.text",
    "image.edit",
)
CHAT_CAPABILITIES = frozenset({"chat", "chat.stream"})
MUSIC_CAPABILITIES = frozenset({"music.text", "music.reference_audio"})
IMAGE_CAPABILITIES = frozenset({"image.text", "image.edit"})
MODEL_STATUSES = ("available", "preview")
AUTO_MODEL = "auto"


@dataclass(frozen=True, slots=True)
class Deployment:
    """One place a catalog model can be served: a provider and its own model id."""

    id: str
    provider: str
    model: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class ModelSettings:
    id: str
    deployments: tuple[Deployment, ...]
    capabilities: tuple[str, ...] = ("chat", "chat.stream")
    status: str = "available"
    owned_by: str = "beatra"
    context_window: int = 8192
    max_output_tokens: int = 4096
    rpm: int | None = None  # None: limits.model_rpm
    tpm: int | None = None
    created: int = 1735689600  # 2025-01-01: a fixed date keeps the catalog stable across restarts
    dimensions: int | None = None  # embeddings: the longest vector it gives (None: unknown)


@dataclass(frozen=True, slots=True)
class KeySettings:
    name: str
    sha256: bytes
    models: frozenset[str] | None  # None: every model
    development: bool = False
    disabled: bool = False
    rpm: int | None = None  # None: limits.key_rpm
    tpm: int | None = None

    def allows(self, model_id: str) -> bool:
        return self.models is None or model_id in self.models


def hash_key(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def model_settings(
    table: Table, providers: Mapping[str, ProviderSettings]
) -> dict[str, ModelSettings]:
    """Every ``[models.ID]``; ``auto`` is reserved for routing. An id may contain ``/``
    (``meta-llama/Llama-3.1-8B``), but not a segment that no URL can name: an empty one, or a
    ``.``/``..`` that clients resolve away before sending."""
    for name, _ in table.items():
        if any(segment in ("", ".", "..") for segment in name.split("/")):
            raise ConfigError(
                child_path("models", name), 'an id needs non-empty "/" segments, not "." or ".."'
            )
    models = {
        name: _model(name, value, child_path("models", name), providers)
        for name, value in table.items()
    }
    if AUTO_MODEL in models:
        raise ConfigError(child_path("models", AUTO_MODEL), '"auto" is reserved for routing')
    return models


def routing_settings(
    routing: Table, models: Mapping[str, ModelSettings]
) -> tuple[tuple[str, ...], dict[str, str]]:
    """``[routing]``: the candidates of ``auto`` and the aliases, each naming a catalog model."""
    auto: tuple[str, ...] = routing.strings("auto", default=tuple(models))
    for index, model_id in enumerate(auto):
        if model_id not in models:
            raise ConfigError(f"routing.auto[{index}]", f'unknown model "{model_id}"')
    aliases_table = routing.table("aliases")
    aliases: dict[str, str] = {}
    for alias, target in aliases_table.items():
        if not isinstance(target, str) or target not in models:
            raise ConfigError(aliases_table.at(alias), f'unknown model "{target}"')
        if alias in models or alias == AUTO_MODEL:
            raise ConfigError(aliases_table.at(alias), "an alias must not shadow a model id")
        aliases[alias] = target
    routing.done()
    return auto, aliases


def key_settings(
    table: Table, env: Mapping[str, str], models: Mapping[str, ModelSettings]
) -> dict[str, KeySettings]:
    return {
        name: _key(name, value, child_path("keys", name), env, models)
        for name, value in table.items()
    }


def _model(
    name: str, value: Any, path: str, providers: Mapping[str, ProviderSettings]
) -> ModelSettings:
    table = Table(value, path)
    d = ModelSettings(id=name, deployments=())
    deployments: list[Deployment] = []
    if "deployments" in table.data:
        listed = table.raw("deployments")
        if not isinstance(listed, list) or not listed:
            raise ConfigError(table.at("deployments"), "expected a non-empty list of tables")
        for index, item in enumerate(listed):
            deployments.append(
                _deployment(
                    name, Table(item, f"{table.at('deployments')}[{index}]"), providers, index
                )
            )
    else:
        deployments.append(_deployment(name, table, providers, 0, shorthand=True))
    capabilities = table.strings("capabilities", d.capabilities)
    for index, capability in enumerate(capabilities):
        if capability not in CAPABILITIES:
            raise ConfigError(
                f"{table.at('capabilities')}[{index}]", f'unknown capability "{capability}"'
            )
    _check_adapters_serve(table, deployments, capabilities, providers)
    status = table.text("status", d.status)
    if status not in MODEL_STATUSES:
        raise ConfigError(table.at("status"), 'must be "available" or "preview"')
    settings = ModelSettings(
        id=name,
        deployments=tuple(deployments),
        capabilities=capabilities,
        status=status,
        owned_by=table.text("owned_by", d.owned_by),
        context_window=table.integer("context_window", d.context_window, 1),
        max_output_tokens=table.integer("max_output_tokens", d.max_output_tokens, 1),
        rpm=table.integer("rpm", None, 0),
        tpm=table.integer("tpm", None, 0),
        created=table.integer("created", d.created, 0),
        dimensions=table.integer("dimensions", None, 1),
    )
    table.done()
    return settings


def _check_adapters_serve(
    table: Table,
    deployments: list[Deployment],
    capabilities: tuple[str, ...],
    providers: Mapping[str, ProviderSettings],
) -> None:
    """Every deployment's provider must have an adapter for the model's kind of capability."""
    for deployment in deployments:
        kind = providers[deployment.provider].kind
        if CHAT_CAPABILITIES.intersection(capabilities) and kind not in ADAPTERS:
            raise ConfigError(
                table.at("capabilities"), f'provider kind "{kind}" does not serve chat'
            )
        if "embeddings" in capabilities and kind not in EMBEDDING_KINDS:
            raise ConfigError(
                table.at("capabilities"), f'provider kind "{kind}" does not serve embeddings'
            )
        if MUSIC_CAPABILITIES.intersection(capabilities) and kind not in MUSIC_ADAPTERS:
            raise ConfigError(
                table.at("capabilities"), f'provider kind "{kind}" does not serve music'
            )
        if IMAGE_CAPABILITIES.intersection(capabilities) and kind not in IMAGE_ADAPTERS:
            raise ConfigError(
                table.at("capabilities"), f'provider kind "{kind}" does not serve images'
            )


def _deployment(
    model_id: str,
    table: Table,
    providers: Mapping[str, ProviderSettings],
    index: int,
    shorthand: bool = False,
) -> Deployment:
    provider = table.text("provider")
    if provider not in providers:
        raise ConfigError(table.at("provider"), f'unknown provider "{provider}"')
    upstream_model = table.text("model", model_id)
    weight = table.number("weight", 1.0, 0.0) if not shorthand else 1.0
    if not shorthand:
        table.done()
    return Deployment(f"{model_id}#{index}", provider, upstream_model, weight)


def _key(
    name: str, value: Any, path: str, env: Mapping[str, str], models: Mapping[str, ModelSettings]
) -> KeySettings:
    table = Table(value, path)
    digest_hex = table.text("sha256", None)
    key_env = table.text("key_env", None)
    if (digest_hex is None) == (key_env is None):
        raise ConfigError(path, 'give exactly one of "sha256" or "key_env"')
    if digest_hex is not None:
        try:
            digest = bytes.fromhex(digest_hex)
        except ValueError:
            digest = b""
        if len(digest) != 32:
            raise ConfigError(table.at("sha256"), "expected 64 hex digits (a sha256 digest)")
    else:
        secret = env.get(key_env or "")
        if not secret:
            raise ConfigError(table.at("key_env"), f"environment variable {key_env} is not set")
        digest = hash_key(secret)
    allowed = table.strings("models", ("*",))
    for index, model_id in enumerate(allowed):
        if model_id != "*" and model_id not in models:
            raise ConfigError(f"{table.at('models')}[{index}]", f'unknown model "{model_id}"')
    settings = KeySettings(
        name=name,
        sha256=digest,
        models=None if "*" in allowed else frozenset(allowed),
        development=table.flag("development", False),
        disabled=table.flag("disabled", False),
        rpm=table.integer("rpm", None, 0),
        tpm=table.integer("tpm", None, 0),
    )
    table.done()
    return settings
