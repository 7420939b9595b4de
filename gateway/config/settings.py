"""The gateway's configuration: the ``Settings`` root and its strict loading from TOML.

Secrets never sit in the file: provider keys are named by environment variable, and client API
keys are stored as sha256 hashes (or named by environment variable and hashed at load). Every
reference (a model's provider, a route's model, a key's models) is checked at start.

The sections are read where they are defined: the request path's in ``sections``, the services'
in ``services`` (both by the data-driven reader of ``schema``), providers and their options in
``adapters``, the catalog (models, routing, keys) in ``catalog``. Their names are re-exported
here, where the rest of the gateway imports them from.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from gateway.config.adapters import provider_settings
from gateway.config.catalog import (
    AUTO_MODEL,
    CAPABILITIES,
    CHAT_CAPABILITIES,
    MODEL_STATUSES,
    MUSIC_CAPABILITIES,
    Deployment,
    KeySettings,
    ModelSettings,
    hash_key,
    key_settings,
    model_settings,
    routing_settings,
)
from gateway.config.reader import ConfigError, Table, child_path
from gateway.config.sections import (
    IdempotencySettings,
    LimitSettings,
    RelaySettings,
    ResponsesSettings,
    ServerSettings,
    idempotency_settings,
    limit_settings,
    relay_settings,
    responses_settings,
    server_settings,
)
from gateway.config.services import (
    StateSettings,
    StorageSettings,
    TaskSettings,
    TelemetrySettings,
    state_settings,
    storage_settings,
    task_settings,
    telemetry_settings,
)
from providers.base import ProviderSettings
from providers.scrub import Scrubber, SecretIndex, model_names

__all__ = [
    "AUTO_MODEL",
    "CAPABILITIES",
    "CHAT_CAPABILITIES",
    "MODEL_STATUSES",
    "MUSIC_CAPABILITIES",
    "ConfigError",
    "Deployment",
    "IdempotencySettings",
    "KeySettings",
    "LimitSettings",
    "ModelSettings",
    "RelaySettings",
    "ResponsesSettings",
    "ServerSettings",
    "Settings",
    "StateSettings",
    "StorageSettings",
    "TaskSettings",
    "hash_key",
    "load_settings",
    "settings_from_dict",
]


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings
    relay: RelaySettings
    providers: Mapping[str, ProviderSettings]
    models: Mapping[str, ModelSettings]
    auto: tuple[str, ...]
    aliases: Mapping[str, str]
    keys: Mapping[str, KeySettings] = field(default_factory=dict)
    limits: LimitSettings = field(default_factory=LimitSettings)
    idempotency: IdempotencySettings = field(default_factory=IdempotencySettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    tasks: TaskSettings = field(default_factory=TaskSettings)
    state: StateSettings = field(default_factory=StateSettings)
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    responses: ResponsesSettings = field(default_factory=ResponsesSettings)


def default_config_text() -> str:
    return resources.files("config").joinpath("default.toml").read_text(encoding="utf-8")


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read a TOML file (the embedded default when ``path`` is None) into ``Settings``."""
    text = default_config_text() if path is None else Path(path).read_text(encoding="utf-8")
    return parse_settings(text, env)


def parse_settings(text: str, env: Mapping[str, str] | None = None) -> Settings:
    """A configuration's TOML text into ``Settings`` (``env``: where ``*_env`` names resolve)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"not valid TOML: {exc}") from exc
    return settings_from_dict(data, os.environ if env is None else env)


def settings_from_dict(data: Mapping[str, Any], env: Mapping[str, str]) -> Settings:
    root = Table(dict(data), "")
    server = server_settings(root.table("server"), env)
    relay = relay_settings(root.table("relay"))
    providers = {
        name: provider_settings(name, value, child_path("providers", name), env)
        for name, value in root.table("providers", required=True).items()
    }
    models = model_settings(root.table("models", required=True), providers)
    auto, aliases = routing_settings(root.table("routing"), models)
    keys = key_settings(root.table("keys", required=True), env, models)
    limits = limit_settings(root.table("limits"))
    idempotency = idempotency_settings(root.table("idempotency"))
    storage = storage_settings(root.table("storage"))
    tasks = task_settings(root.table("tasks"))
    state = state_settings(root.table("state"), env)
    telemetry = telemetry_settings(root.table("telemetry"), env)
    responses = responses_settings(root.table("responses"))
    root.done()
    secrets = [provider.api_key for provider in providers.values()]
    secrets += [server.metrics_token, _url_password(state.redis_url)]
    providers = _with_scrubbers(providers, models, SecretIndex(secrets))
    return Settings(
        server,
        relay,
        providers,
        models,
        auto,
        aliases,
        keys,
        limits,
        idempotency,
        storage,
        tasks,
        state,
        telemetry,
        responses,
    )


def _url_password(url: str | None) -> str | None:
    """The password of a URL such as ``redis://:pw@host/0`` (the secret part of it)."""
    try:
        return urllib.parse.urlsplit(url).password if url else None
    except ValueError:
        return None


def _with_scrubbers(
    providers: Mapping[str, ProviderSettings],
    models: Mapping[str, ModelSettings],
    secrets: SecretIndex,
) -> dict[str, ProviderSettings]:
    """Each provider with the scrubber of its error text: every secret of the configuration
    (any provider's text may echo any of them), and its own upstream ids -> catalog ids.
    Client keys are not among the secrets: they are held only as digests."""
    deployments = [
        (model.id, deployment.provider, deployment.model)
        for model in models.values()
        for deployment in model.deployments
    ]
    return {
        name: dataclasses.replace(
            provider, scrubber=Scrubber(secrets, model_names(name, deployments))
        )
        for name, provider in providers.items()
    }
