"""Reading ``[providers.NAME]``: the adapter kind, how to reach it, and its ``options``.

The options are validated by the adapters' own schemas: each adapter class of the kind (one for
chat, one for music, or both) declares an ``Options`` dataclass, and the table is read against
all of them with the data-driven reader, so an unknown option or a wrong type fails at start
with its path (``providers.NAME.options.KEY``), and ``"false"`` is never read as true.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.config.reader import ConfigError, Table, env_secret
from gateway.config.schema import given_fields, read_fields
from providers.base import ProviderSettings
from providers.registry import AdapterClass, adapter_classes


def provider_settings(name: str, value: Any, path: str, env: Mapping[str, str]) -> ProviderSettings:
    table = Table(value, path)
    kind = table.text("kind")
    adapters = adapter_classes(kind)
    if not adapters:
        raise ConfigError(table.at("kind"), f'unknown provider kind "{kind}"')
    base_url = table.text("base_url", None) or ""
    if not base_url and any(adapter.needs_base_url for adapter in adapters):
        raise ConfigError(table.at("base_url"), "is required")
    api_key = env_secret(table, "api_key_env", env)
    d = ProviderSettings(name=name, kind=kind)
    options = adapter_options(table.table("options"), adapters)
    settings = ProviderSettings(
        name=name,
        kind=kind,
        base_url=base_url,
        api_key=api_key,
        connect_timeout=table.number("connect_timeout_s", d.connect_timeout, 0.001),
        read_timeout=table.number("read_timeout_s", d.read_timeout, 0.001),
        total_timeout=table.number("total_timeout_s", d.total_timeout, 0.001),
        max_connections=table.integer("max_connections", d.max_connections, 1),
        options=options,
    )
    table.done()
    return settings


def adapter_options(table: Table, adapters: tuple[AdapterClass, ...]) -> dict[str, Any]:
    """The options the operator gave, checked against the schema of every adapter of the kind
    and read as those schemas type them; a key none of them declares is unknown."""
    options: dict[str, Any] = {}
    for adapter in adapters:
        options.update(given_fields(read_fields(adapter.Options, table), table))
    table.done()
    return options
