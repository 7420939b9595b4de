"""Reading ``[providers.NAME]``: the adapter kind, how to reach it, and its ``options``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.config.reader import ConfigError, Table, env_secret
from providers.base import ProviderSettings
from providers.registry import ADAPTERS, MUSIC_ADAPTERS


def provider_settings(name: str, value: Any, path: str, env: Mapping[str, str]) -> ProviderSettings:
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
