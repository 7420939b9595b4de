"""The gateway's configuration: typed settings and their strict loading from TOML.

Secrets never sit in the file: provider keys are named by environment variable, and client API
keys are stored as sha256 hashes (or named by environment variable and hashed at load). Every
reference (a model's provider, a route's model, a key's models) is checked here, at start.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from gateway.config.reader import ConfigError, Table, child_path, env_secret
from gateway.config.services import (
    StateSettings,
    StorageSettings,
    TaskSettings,
    state_settings,
    storage_settings,
    task_settings,
)

__all__ = [
    "ConfigError",
    "Settings",
    "StateSettings",
    "StorageSettings",
    "TaskSettings",
    "load_settings",
]
from providers.base import ProviderSettings
from providers.registry import ADAPTERS, MUSIC_ADAPTERS
from providers.scrub import Scrubber, SecretIndex, model_names

CAPABILITIES = ("chat", "chat.stream", "music.text", "music.reference_audio")
CHAT_CAPABILITIES = frozenset({"chat", "chat.stream"})
MUSIC_CAPABILITIES = frozenset({"music.text", "music.reference_audio"})
MODEL_STATUSES = ("available", "preview")
AUTO_MODEL = "auto"


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 4 * 1024 * 1024
    log_level: str = "info"
    log_format: str = "json"
    metrics_token: str | None = None  # when set, GET /metrics needs this bearer token
    shutdown_grace_s: float = 30.0  # on SIGTERM: how long in-flight requests and streams may finish
    header_timeout_s: float = 10.0  # a request head must arrive within this (slowloris)
    body_timeout_s: float = 300.0  # and its body within this (100 MB at about 350 KB/s)


@dataclass(frozen=True, slots=True)
class RelaySettings:
    """How the relay retries, falls back and cools deployments down."""

    attempts_per_deployment: int = 2
    backoff_base_s: float = 0.1
    backoff_max_s: float = 2.0
    max_retry_after_s: float = 5.0  # a longer upstream Retry-After falls back instead of waiting
    cooldown_failures: int = 3
    cooldown_s: float = 30.0
    # One chat request's deadline across every attempt and fallback (a sync answer: until it is
    # whole; a stream: until its first event). As long as a provider's default total_timeout_s,
    # so one whole sync attempt always fits; each attempt is capped at what is left of it.
    request_timeout_s: float = 600.0
    # A timed-out attempt may still be running (and billed) upstream: by default it is not
    # repeated on the same deployment (a fallback to the next one still happens).
    retry_on_timeout: bool = False


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """Gateway-wide load shedding and the default rate limits (0 means unlimited)."""

    max_concurrency: int = 1024  # chat requests in flight before new ones get 503
    key_rpm: int = 0
    key_tpm: int = 0
    model_rpm: int = 0
    model_tpm: int = 0


@dataclass(frozen=True, slots=True)
class IdempotencySettings:
    window_s: float = 86400.0
    # In-memory bounds sized for one process (about 5 KB of RSS per kept answer, measured);
    # a shared store keeps more for longer.
    max_entries: int = 10_000
    max_response_bytes: int = 1024 * 1024  # a larger answer is served but not kept
    max_total_bytes: int = 16 * 1024 * 1024  # all kept answers together
    wait_s: float = 30.0  # how long a duplicate waits for the first before 409 in_progress


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


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings
    relay: RelaySettings
    providers: Mapping[str, ProviderSettings]
    models: Mapping[str, ModelSettings]
    auto: tuple[str, ...]
    aliases: Mapping[str, str]
    keys: Mapping[str, KeySettings] = field(default_factory=dict)
    limits: LimitSettings = LimitSettings()
    idempotency: IdempotencySettings = IdempotencySettings()
    storage: StorageSettings = field(default_factory=StorageSettings)
    tasks: TaskSettings = field(default_factory=TaskSettings)
    state: StateSettings = field(default_factory=StateSettings)


def default_config_text() -> str:
    return resources.files("config").joinpath("default.toml").read_text(encoding="utf-8")


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read a TOML file (the embedded default when ``path`` is None) into ``Settings``."""
    text = default_config_text() if path is None else Path(path).read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"not valid TOML: {exc}") from exc
    return settings_from_dict(data, os.environ if env is None else env)


def hash_key(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def settings_from_dict(data: Mapping[str, Any], env: Mapping[str, str]) -> Settings:
    root = Table(dict(data), "")
    server = _server(root.table("server"), env)
    relay = _relay(root.table("relay"))
    providers = {
        name: _provider(name, value, child_path("providers", name), env)
        for name, value in root.table("providers", required=True).items()
    }
    models = {
        name: _model(name, value, child_path("models", name), providers)
        for name, value in root.table("models", required=True).items()
    }
    if AUTO_MODEL in models:
        raise ConfigError(child_path("models", AUTO_MODEL), '"auto" is reserved for routing')
    routing = root.table("routing")
    auto = routing.strings("auto", default=tuple(models))
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
    keys = {
        name: _key(name, value, child_path("keys", name), env, models)
        for name, value in root.table("keys", required=True).items()
    }
    limits = _limits(root.table("limits"))
    idempotency = _idempotency(root.table("idempotency"))
    storage = storage_settings(root.table("storage"))
    tasks = task_settings(root.table("tasks"))
    state = state_settings(root.table("state"), env)
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


def _limits(table: Table) -> LimitSettings:
    d = LimitSettings()
    settings = LimitSettings(
        max_concurrency=table.integer("max_concurrency", d.max_concurrency, 1),
        key_rpm=table.integer("key_rpm", d.key_rpm, 0),
        key_tpm=table.integer("key_tpm", d.key_tpm, 0),
        model_rpm=table.integer("model_rpm", d.model_rpm, 0),
        model_tpm=table.integer("model_tpm", d.model_tpm, 0),
    )
    table.done()
    return settings


def _idempotency(table: Table) -> IdempotencySettings:
    d = IdempotencySettings()
    settings = IdempotencySettings(
        window_s=table.number("window_s", d.window_s, 1),
        max_entries=table.integer("max_entries", d.max_entries, 1),
        max_response_bytes=table.integer("max_response_bytes", d.max_response_bytes, 0),
        max_total_bytes=table.integer("max_total_bytes", d.max_total_bytes, 0),
        wait_s=table.number("wait_s", d.wait_s, 0),
    )
    table.done()
    return settings


def _server(table: Table, env: Mapping[str, str]) -> ServerSettings:
    defaults = ServerSettings()
    settings = ServerSettings(
        host=table.text("host", defaults.host),
        port=table.integer("port", defaults.port, minimum=0),
        max_body_bytes=table.integer("max_body_bytes", defaults.max_body_bytes, minimum=1024),
        log_level=table.text("log_level", defaults.log_level).lower(),
        log_format=table.text("log_format", defaults.log_format),
        metrics_token=env_secret(table, "metrics_token_env", env),
        shutdown_grace_s=table.number("shutdown_grace_s", defaults.shutdown_grace_s, 0),
        header_timeout_s=table.number("header_timeout_s", defaults.header_timeout_s, 0.01),
        body_timeout_s=table.number("body_timeout_s", defaults.body_timeout_s, 0.01),
    )
    if settings.log_format not in ("json", "console"):
        raise ConfigError(table.at("log_format"), 'must be "json" or "console"')
    if settings.log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError(table.at("log_level"), "must be debug, info, warning or error")
    table.done()
    return settings


def _relay(table: Table) -> RelaySettings:
    d = RelaySettings()
    settings = RelaySettings(
        attempts_per_deployment=table.integer(
            "attempts_per_deployment", d.attempts_per_deployment, 1
        ),
        backoff_base_s=table.number("backoff_base_s", d.backoff_base_s, 0),
        backoff_max_s=table.number("backoff_max_s", d.backoff_max_s, 0),
        max_retry_after_s=table.number("max_retry_after_s", d.max_retry_after_s, 0),
        cooldown_failures=table.integer("cooldown_failures", d.cooldown_failures, 1),
        cooldown_s=table.number("cooldown_s", d.cooldown_s, 0),
        request_timeout_s=table.number("request_timeout_s", d.request_timeout_s, 0.001),
        retry_on_timeout=table.flag("retry_on_timeout", d.retry_on_timeout),
    )
    table.done()
    return settings


def _provider(name: str, value: Any, path: str, env: Mapping[str, str]) -> ProviderSettings:
    table = Table(value, path)
    kind = table.text("kind")
    if kind not in ADAPTERS and kind not in MUSIC_ADAPTERS:
        raise ConfigError(table.at("kind"), f'unknown provider kind "{kind}"')
    base_url = table.text("base_url", None) or ""
    if kind != "local" and not base_url:
        raise ConfigError(table.at("base_url"), "is required")
    api_key = env_secret(table, "api_key_env", env)
    d = ProviderSettings(name=name, kind=kind)
    options = table.table("options").data
    settings = ProviderSettings(
        name=name,
        kind=kind,
        base_url=base_url,
        api_key=api_key,
        connect_timeout=table.number("connect_timeout_s", d.connect_timeout, 0.001),
        read_timeout=table.number("read_timeout_s", d.read_timeout, 0.001),
        total_timeout=table.number("total_timeout_s", d.total_timeout, 0.001),
        max_connections=table.integer("max_connections", d.max_connections, 1),
        options=dict(options),
    )
    table.done()
    return settings


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
        if MUSIC_CAPABILITIES.intersection(capabilities) and kind not in MUSIC_ADAPTERS:
            raise ConfigError(
                table.at("capabilities"), f'provider kind "{kind}" does not serve music'
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
