"""The adapter registries: the configuration's provider ``kind`` string -> adapter class.

A kind may appear in both (``local`` serves chat and music); a provider of that kind gets one
adapter of each.
"""

from __future__ import annotations

from collections.abc import Callable

from providers.base import ChatAdapter, ProviderSettings
from providers.chat.anthropic import AnthropicAdapter
from providers.chat.local import LocalAdapter
from providers.chat.openai_compat import OpenAICompatAdapter
from providers.music.base import MusicAdapter
from providers.music.fal import FalMusicAdapter
from providers.music.local import LocalMusicAdapter
from providers.music.replicate import ReplicateMusicAdapter
from providers.music.stability import StabilityMusicAdapter

ADAPTERS: dict[str, Callable[[ProviderSettings], ChatAdapter]] = {
    LocalAdapter.kind: LocalAdapter,
    OpenAICompatAdapter.kind: OpenAICompatAdapter,
    AnthropicAdapter.kind: AnthropicAdapter,
}

MUSIC_ADAPTERS: dict[str, Callable[[ProviderSettings], MusicAdapter]] = {
    LocalMusicAdapter.kind: LocalMusicAdapter,
    FalMusicAdapter.kind: FalMusicAdapter,
    ReplicateMusicAdapter.kind: ReplicateMusicAdapter,
    StabilityMusicAdapter.kind: StabilityMusicAdapter,
}


def build_adapter(settings: ProviderSettings) -> ChatAdapter:
    return ADAPTERS[settings.kind](settings)


def build_music_adapter(settings: ProviderSettings) -> MusicAdapter:
    return MUSIC_ADAPTERS[settings.kind](settings)
