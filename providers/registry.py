"""The adapter registries: the configuration's provider ``kind`` string -> adapter class.

A kind may appear in several (``local`` serves chat, music and images); a provider of that
kind gets one adapter of each. Embeddings are served by the chat adapter of the kinds in
``EMBEDDING_KINDS`` (it implements ``providers.embeddings.base.EmbeddingsAdapter`` too, on the
same connections).
"""

from __future__ import annotations

from typing import Any, Protocol

from providers.base import ChatAdapter, ProviderSettings
from providers.chat.anthropic import AnthropicAdapter
from providers.chat.local import LocalAdapter
from providers.chat.openai_compat import OpenAICompatAdapter
from providers.images.base import ImagesAdapter
from providers.images.fal import FalImagesAdapter
from providers.images.local import LocalImagesAdapter
from providers.images.openai import OpenAIImagesAdapter
from providers.images.replicate import ReplicateImagesAdapter
from providers.images.stability import StabilityImagesAdapter
from providers.music.base import MusicAdapter
from providers.music.fal import FalMusicAdapter
from providers.music.local import LocalMusicAdapter
from providers.music.replicate import ReplicateMusicAdapter
from providers.music.stability import StabilityMusicAdapter


class AdapterClass(Protocol):
    """What the configuration needs of an adapter class before building one."""

    # The schema of ``[providers.NAME.options]``: a dataclass whose fields (their types and
    # defaults) are the options the adapter reads.
    Options: type[Any]
    needs_base_url: bool  # False: the adapter connects to nothing (``base_url`` may be left out)


class ChatAdapterClass(AdapterClass, Protocol):
    def __call__(self, settings: ProviderSettings) -> ChatAdapter: ...


class MusicAdapterClass(AdapterClass, Protocol):
    def __call__(self, settings: ProviderSettings) -> MusicAdapter: ...


ADAPTERS: dict[str, ChatAdapterClass] = {
    LocalAdapter.kind: LocalAdapter,
    OpenAICompatAdapter.kind: OpenAICompatAdapter,
    AnthropicAdapter.kind: AnthropicAdapter,
}

# The kinds whose chat adapter also implements ``EmbeddingsAdapter``.
EMBEDDING_KINDS: frozenset[str] = frozenset({LocalAdapter.kind, OpenAICompatAdapter.kind})

MUSIC_ADAPTERS: dict[str, MusicAdapterClass] = {
    LocalMusicAdapter.kind: LocalMusicAdapter,
    FalMusicAdapter.kind: FalMusicAdapter,
    ReplicateMusicAdapter.kind: ReplicateMusicAdapter,
    StabilityMusicAdapter.kind: StabilityMusicAdapter,
}


class ImagesAdapterClass(AdapterClass, Protocol):
    def __call__(self, settings: ProviderSettings) -> ImagesAdapter: ...


IMAGE_ADAPTERS: dict[str, ImagesAdapterClass] = {
    LocalImagesAdapter.kind: LocalImagesAdapter,
    OpenAIImagesAdapter.kind: OpenAIImagesAdapter,
    StabilityImagesAdapter.kind: StabilityImagesAdapter,
    ReplicateImagesAdapter.kind: ReplicateImagesAdapter,
    FalImagesAdapter.kind: FalImagesAdapter,
}


def adapter_classes(kind: str) -> tuple[AdapterClass, ...]:
    """The adapter classes of a provider kind: one each for chat, music and images it serves."""
    found: list[AdapterClass | None] = [
        ADAPTERS.get(kind),
        MUSIC_ADAPTERS.get(kind),
        IMAGE_ADAPTERS.get(kind),
    ]
    return tuple(adapter for adapter in found if adapter is not None)


def build_adapter(settings: ProviderSettings) -> ChatAdapter:
    return ADAPTERS[settings.kind](settings)


def build_music_adapter(settings: ProviderSettings) -> MusicAdapter:
    return MUSIC_ADAPTERS[settings.kind](settings)


def build_image_adapter(settings: ProviderSettings) -> ImagesAdapter:
    return IMAGE_ADAPTERS[settings.kind](settings)
