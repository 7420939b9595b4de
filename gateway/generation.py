"""One configuration's request path: its adapters, keys, catalog, relays, limits, endpoints,
route table and router, built from ``Settings`` on top of the ``Services`` that outlive it.

A reload (``gateway.reload``) builds a new ``Generation`` beside the live one and swaps it in;
requests already dispatched keep the generation they started on, so they finish on their own
config. What holds state that must survive a reload lives in ``Services`` instead: the stores
(rate-limit counters, Idempotency-Keys, cooldowns, tasks, artifacts), metrics, traces, the task
runner and the concurrency shedder. An adapter whose provider settings did not change is taken
over from the previous generation with its connection pool; the rest are built new, and the
previous generation's leftovers are closed once its last request ends (``retired_adapters``).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from gateway.artifacts.files import Artifacts
from gateway.config.settings import Settings
from gateway.endpoints.artifacts import ArtifactEndpoints
from gateway.endpoints.chat import ChatEndpoint
from gateway.endpoints.embeddings import EmbeddingsEndpoint
from gateway.endpoints.images import MAX_EDIT_BYTES, ImageEditsEndpoint, ImagesEndpoint
from gateway.endpoints.models import CatalogEndpoints
from gateway.endpoints.music import MusicEndpoint
from gateway.endpoints.operations import OperationsEndpoints
from gateway.endpoints.responses import ResponsesEndpoint
from gateway.endpoints.responses_stored import StoredResponseEndpoints
from gateway.endpoints.routes import route_table
from gateway.endpoints.tasks import TaskEndpoints
from gateway.endpoints.uploads import UploadEndpoint
from gateway.http.router import Route, Router
from gateway.metrics import Metrics
from gateway.policy.auth import KeyRing
from gateway.policy.idempotency import Idempotency
from gateway.policy.ratelimit import LoadShedder, RateLimiter
from gateway.policy.relay import PlanRelay, Relay
from gateway.policy.routing import Catalog
from gateway.stores.build import Stores
from gateway.tasks.runner import TaskRunner
from gateway.telemetry import Tracing
from providers.base import ChatAdapter, ProviderSettings
from providers.embeddings.base import EmbeddingsAdapter
from providers.images.base import ImagesAdapter
from providers.music.base import MusicAdapter
from providers.registry import (
    ADAPTERS,
    IMAGE_ADAPTERS,
    MUSIC_ADAPTERS,
    build_adapter,
    build_image_adapter,
    build_music_adapter,
)

Adapter = ChatAdapter | MusicAdapter | ImagesAdapter
A = TypeVar("A", ChatAdapter, MusicAdapter, ImagesAdapter)


@dataclass(slots=True)
class Services:
    """What outlives a reload: state, observability and the background task runner."""

    metrics: Metrics
    stores: Stores
    artifacts: Artifacts
    runner: TaskRunner
    idempotency: Idempotency
    shedder: LoadShedder
    operations: OperationsEndpoints
    tracing: Tracing | None
    clock: Callable[[], float]  # the stores' clock
    rng: random.Random
    # The runner's view of the music and image adapters: dicts refilled in place on a swap, so
    # tasks submitted after a reload reach the new adapters.
    music_adapters: dict[str, MusicAdapter] = field(default_factory=dict)
    image_adapters: dict[str, ImagesAdapter] = field(default_factory=dict)


def same_provider(old: ProviderSettings, new: ProviderSettings) -> bool:
    """Whether an adapter built for ``old`` can serve ``new`` as it is. The scrubber is left out:
    it is rebuilt from the whole file on every load, and an unchanged provider keeps its own."""
    return dataclasses.replace(old, scrubber=None) == dataclasses.replace(new, scrubber=None)


@dataclass(slots=True)
class Generation:
    settings: Settings
    adapters: dict[str, ChatAdapter]
    music_adapters: dict[str, MusicAdapter]
    image_adapters: dict[str, ImagesAdapter]
    routes: list[Route]
    router: Router
    # The adapters this generation built itself (not taken over): the ones to start.
    fresh: list[Adapter] = field(default_factory=list)

    def all_adapters(self) -> Iterator[Adapter]:
        yield from self.adapters.values()
        yield from self.music_adapters.values()
        yield from self.image_adapters.values()


def _adapters(
    settings: Settings, previous: Generation | None
) -> tuple[
    dict[str, ChatAdapter], dict[str, MusicAdapter], dict[str, ImagesAdapter], list[Adapter]
]:
    """Each provider's adapters: the previous generation's where the provider is unchanged."""
    fresh: list[Adapter] = []

    def one_of_each(
        registry: Mapping[str, object],
        build: Callable[[ProviderSettings], A],
        kept_from: Callable[[Generation], Mapping[str, A]],
    ) -> dict[str, A]:
        adapters: dict[str, A] = {}
        for name, provider in settings.providers.items():
            if provider.kind not in registry:
                continue
            old = None if previous is None else kept_from(previous).get(name)
            if old is not None and previous is not None:
                before = previous.settings.providers.get(name)
                if before is not None and same_provider(before, provider):
                    adapters[name] = old
                    continue
            adapters[name] = build(provider)
            fresh.append(adapters[name])
        return adapters

    chat = one_of_each(ADAPTERS, build_adapter, lambda g: g.adapters)
    music = one_of_each(MUSIC_ADAPTERS, build_music_adapter, lambda g: g.music_adapters)
    images = one_of_each(IMAGE_ADAPTERS, build_image_adapter, lambda g: g.image_adapters)
    return chat, music, images, fresh


def retired_adapters(old: Generation, new: Generation) -> list[Adapter]:
    """The adapters of ``old`` that ``new`` did not take over: to close once ``old`` drains."""
    kept = {id(adapter) for adapter in new.all_adapters()}
    return [adapter for adapter in old.all_adapters() if id(adapter) not in kept]


def build_generation(
    settings: Settings, services: Services, previous: Generation | None = None
) -> Generation:
    """The request path for ``settings``; ``previous`` lends its unchanged adapters."""
    chat_adapters, music_adapters, image_adapters, fresh = _adapters(settings, previous)
    metrics = services.metrics
    stores = services.stores
    clock = services.clock
    rng = services.rng
    cooldowns = stores.cooldowns
    idempotency = services.idempotency
    shedder = services.shedder
    artifacts = services.artifacts
    keys = KeyRing(settings.keys)
    catalog = Catalog(settings, rng)
    relay = Relay(
        chat_adapters,
        settings.relay,
        cooldowns,
        metrics,
        clock=clock,
        rng=rng,
        tracing=services.tracing,
    )
    limiter = RateLimiter(settings, stores.rate_limits, metrics, clock)
    body_limit = settings.server.max_body_bytes
    # The chat adapters that serve embeddings too, on the same connections and cooldowns.
    embedders: dict[str, EmbeddingsAdapter] = {
        name: adapter
        for name, adapter in chat_adapters.items()
        if isinstance(adapter, EmbeddingsAdapter)
    }
    images = ImagesEndpoint(
        keys,
        catalog,
        PlanRelay(image_adapters, settings.relay, cooldowns, metrics, clock=clock, rng=rng),
        image_adapters,
        artifacts=artifacts,
        limiter=limiter,
        idempotency=idempotency,
        metrics=metrics,
        body_limit=body_limit,
        tasks=stores.tasks,
        runner=services.runner,
    )
    upload_limit = settings.storage.max_upload_bytes
    routes = route_table(
        chat=ChatEndpoint(
            keys,
            catalog,
            relay,
            metrics,
            limiter=limiter,
            shedder=shedder,
            idempotency=idempotency,
            body_limit=body_limit,
        ),
        embeddings=EmbeddingsEndpoint(
            keys,
            catalog,
            PlanRelay(embedders, settings.relay, cooldowns, metrics, clock=clock, rng=rng),
            limiter=limiter,
            shedder=shedder,
            idempotency=idempotency,
            body_limit=body_limit,
        ),
        responses=ResponsesEndpoint(
            keys,
            catalog,
            relay,
            metrics,
            limiter=limiter,
            shedder=shedder,
            idempotency=idempotency,
            body_limit=body_limit,
            store=stores.responses,
        ),
        stored_responses=StoredResponseEndpoints(keys, stores.responses),
        models=CatalogEndpoints(keys, catalog),
        music=MusicEndpoint(
            keys,
            catalog,
            music_adapters,  # the runner gets the same adapters when this generation goes live
            artifacts=artifacts,
            tasks=stores.tasks,
            runner=services.runner,
            limiter=limiter,
            idempotency=idempotency,
            body_limit=body_limit,
        ),
        images=images,
        image_edits=ImageEditsEndpoint(
            keys, idempotency, images, min(upload_limit, MAX_EDIT_BYTES)
        ),
        uploads=UploadEndpoint(keys, artifacts, idempotency, upload_limit, metrics),
        artifacts=ArtifactEndpoints(keys, artifacts),
        tasks=TaskEndpoints(keys, stores.tasks, services.runner),
        operations=services.operations,
    )
    return Generation(
        settings,
        chat_adapters,
        music_adapters,
        image_adapters,
        routes,
        Router(routes, keys.authenticate),
        fresh,
    )
