"""``create_app``: builds the whole gateway from ``Settings``; nothing happens at import time.

The returned object is a plain ASGI application. Its lifespan opens the adapters' connection
pools and closes them on shutdown. The route table is ``gateway.endpoints.routes``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from pathlib import Path

from gateway.artifacts.files import ArtifactFiles, Artifacts
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
from gateway.http.asgi import ASGIApp, Receive, Scope, Send
from gateway.http.middleware import EdgeMiddleware
from gateway.http.router import Router
from gateway.metrics import Metrics
from gateway.policy.auth import KeyRing
from gateway.policy.idempotency import Idempotency
from gateway.policy.ratelimit import LoadShedder, RateLimiter
from gateway.policy.relay import PlanRelay, Relay
from gateway.policy.routing import Catalog
from gateway.stores.build import build_stores
from gateway.tasks.runner import TaskRunner
from gateway.telemetry import build_tracing
from gateway.worker_metrics import WorkerMetrics, WorkerSlot
from providers.base import ChatAdapter
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


class Gateway:
    """The application: middleware around the router, plus the lifespan of its resources."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = None,
        wall_clock: Callable[[], float] = time.time,
        worker: WorkerSlot | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = Metrics()
        # Under --workers N, /metrics answers with every worker's series.
        self.worker_metrics = None if worker is None else WorkerMetrics(worker, self.metrics)
        self.adapters: dict[str, ChatAdapter] = {
            name: build_adapter(provider)
            for name, provider in settings.providers.items()
            if provider.kind in ADAPTERS
        }
        self.music_adapters: dict[str, MusicAdapter] = {
            name: build_music_adapter(provider)
            for name, provider in settings.providers.items()
            if provider.kind in MUSIC_ADAPTERS
        }
        self.image_adapters: dict[str, ImagesAdapter] = {
            name: build_image_adapter(provider)
            for name, provider in settings.providers.items()
            if provider.kind in IMAGE_ADAPTERS
        }
        rng = random.Random(seed)
        # Traces, when [telemetry] names an OTLP endpoint; None costs the request path nothing.
        self.tracing = build_tracing(
            settings.telemetry, {name: p.kind for name, p in settings.providers.items()}
        )
        self.stores = build_stores(settings, clock, wall_clock)
        stores_clock = self.stores.clock
        self.cooldowns = self.stores.cooldowns
        self.metrics.watch_cooldowns(lambda: self.cooldowns.cooling(stores_clock()))
        keys = KeyRing(settings.keys)
        catalog = Catalog(settings, rng)
        relay = Relay(
            self.adapters,
            settings.relay,
            self.cooldowns,
            self.metrics,
            clock=stores_clock,
            rng=rng,
            tracing=self.tracing,
        )
        self.rate_limits = self.stores.rate_limits
        self.idempotency_store = self.stores.idempotency
        limiter = RateLimiter(settings, self.rate_limits, self.metrics, stores_clock)
        idempotency = Idempotency(
            settings.idempotency, self.idempotency_store, self.metrics, stores_clock
        )
        body_limit = settings.server.max_body_bytes
        shedder = LoadShedder(settings.limits.max_concurrency, self.metrics)
        chat = ChatEndpoint(
            keys,
            catalog,
            relay,
            self.metrics,
            limiter=limiter,
            shedder=shedder,
            idempotency=idempotency,
            body_limit=body_limit,
        )
        # The chat adapters that serve embeddings too, on the same connections and cooldowns.
        embedders: dict[str, EmbeddingsAdapter] = {
            name: adapter
            for name, adapter in self.adapters.items()
            if isinstance(adapter, EmbeddingsAdapter)
        }
        embeddings = EmbeddingsEndpoint(
            keys,
            catalog,
            PlanRelay(
                embedders, settings.relay, self.cooldowns, self.metrics, clock=stores_clock, rng=rng
            ),
            limiter=limiter,
            shedder=shedder,
            idempotency=idempotency,
            body_limit=body_limit,
        )
        responses = ResponsesEndpoint(
            keys,
            catalog,
            relay,
            self.metrics,
            limiter=limiter,
            shedder=shedder,
            idempotency=idempotency,
            body_limit=body_limit,
            store=self.stores.responses,
        )
        models = CatalogEndpoints(keys, catalog)
        self.artifacts = Artifacts(
            self.stores.artifacts,
            ArtifactFiles(Path(settings.storage.path)),
            settings.storage,
            wall_clock,
        )
        self.task_store = self.stores.tasks
        self.runner = TaskRunner(
            self.task_store,
            self.artifacts,
            self.music_adapters,
            settings.tasks,
            self.metrics,
            clock=clock,
            rng=rng,
            shared=self.stores.shared,
            lease_s=settings.state.task_lease_s,
        )
        music = MusicEndpoint(
            keys,
            catalog,
            self.music_adapters,
            artifacts=self.artifacts,
            tasks=self.task_store,
            runner=self.runner,
            limiter=limiter,
            idempotency=idempotency,
            body_limit=body_limit,
        )
        uploads = UploadEndpoint(
            keys, self.artifacts, idempotency, settings.storage.max_upload_bytes, self.metrics
        )
        images = ImagesEndpoint(
            keys,
            catalog,
            PlanRelay(
                self.image_adapters,
                settings.relay,
                self.cooldowns,
                self.metrics,
                clock=stores_clock,
                rng=rng,
            ),
            self.image_adapters,
            artifacts=self.artifacts,
            limiter=limiter,
            idempotency=idempotency,
            metrics=self.metrics,
            body_limit=body_limit,
        )
        artifact_api = ArtifactEndpoints(keys, self.artifacts)
        tasks = TaskEndpoints(keys, self.task_store, self.runner)
        self.operations = OperationsEndpoints(
            self.metrics, settings.server.metrics_token, self.worker_metrics
        )
        self.routes = route_table(
            chat=chat,
            embeddings=embeddings,
            responses=responses,
            stored_responses=StoredResponseEndpoints(keys, self.stores.responses),
            models=models,
            music=music,
            images=images,
            image_edits=ImageEditsEndpoint(
                keys, idempotency, images, min(settings.storage.max_upload_bytes, MAX_EDIT_BYTES)
            ),
            uploads=uploads,
            artifacts=artifact_api,
            tasks=tasks,
            operations=self.operations,
        )
        self.operations.publish(self.routes)
        router = Router(self.routes, keys.authenticate)
        self._app: ASGIApp = EdgeMiddleware(router, self.metrics, self.tracing)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        await self._app(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for adapter in self.adapters.values():
                        await adapter.start()
                    for music_adapter in self.music_adapters.values():
                        await music_adapter.start()
                    for image_adapter in self.image_adapters.values():
                        await image_adapter.start()
                    await self.artifacts.collect_orphans()
                    if self.worker_metrics is not None:
                        await self.worker_metrics.start()
                    await self.runner.start(
                        self.settings.storage.sweep_interval_s,
                        self.settings.tasks.task_retention_s,
                    )
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.worker_metrics is not None:
                    await self.worker_metrics.close()
                await self.runner.stop()
                for adapter in self.adapters.values():
                    await adapter.close()
                for music_adapter in self.music_adapters.values():
                    await music_adapter.close()
                for image_adapter in self.image_adapters.values():
                    await image_adapter.close()
                await self.stores.close()
                if self.tracing is not None:
                    await asyncio.to_thread(self.tracing.close)  # flushes the last spans
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(
    settings: Settings,
    clock: Callable[[], float] = time.monotonic,
    seed: int | None = None,
    wall_clock: Callable[[], float] = time.time,
    worker: WorkerSlot | None = None,
) -> Gateway:
    return Gateway(settings, clock=clock, seed=seed, wall_clock=wall_clock, worker=worker)
