"""The adapter registry: the configuration's provider ``kind`` string -> adapter class."""

from __future__ import annotations

from collections.abc import Callable

from providers.anthropic import AnthropicAdapter
from providers.base import ChatAdapter, ProviderSettings
from providers.local import LocalAdapter
from providers.openai_compat import OpenAICompatAdapter

ADAPTERS: dict[str, Callable[[ProviderSettings], ChatAdapter]] = {
    LocalAdapter.kind: LocalAdapter,
    OpenAICompatAdapter.kind: OpenAICompatAdapter,
    AnthropicAdapter.kind: AnthropicAdapter,
}


def build_adapter(settings: ProviderSettings) -> ChatAdapter:
    return ADAPTERS[settings.kind](settings)
