"""``create_app``: builds the whole gateway from ``Settings``; nothing happens at import time.

The returned object is a plain ASGI application. What one configuration decides (adapters,
keys, catalog, limits, endpoints, the router) is a ``gateway.generation.Generation``, which a
reload (``gateway.reload``, on SIGHUP) replaces while the services that hold state live on. The
lifespan opens the adapters' connection pools and closes them on shutdown. The route table is
``gateway.endpoints.routes``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from pathlib import Path

from gateway.artifacts.files import ArtifactFiles, Artifacts
from gateway.config.settings import Settings
from gateway.endpoints.operations import OperationsEndpoints
from gateway.generation import Generation, Services, build_generation
from gateway.http.asgi import Receive, Scope, Send
from gateway.http.middleware import EdgeMiddleware
from gateway.http.router import Route
from gateway.metrics import Metrics
from gateway.policy.idempotency import Idempotency
from gateway.policy.ratelimit import LoadShedder
from gateway.reload import ConfigSource, Reloader
from gateway.stores.build import build_stores
from gateway.tasks.runner import TaskRunner
from gateway.telemetry import build_tracing
from gateway.worker_metrics import WorkerMetrics, WorkerSlot
from providers.base import ChatAdapter
from providers.images.base import ImagesAdapter
from providers.music.base import MusicAdapter


class Gateway:
    """The application: the edge middleware around the live generation's router, the services
    that outlive a reload, and the lifespan of both."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = None,
        wall_clock: Callable[[], float] = time.time,
        worker: WorkerSlot | None = None,
        source: ConfigSource | None = None,
        sha256: str = "",
    ) -> None:
        """``source``: where a reload (SIGHUP) reads the configuration again; ``sha256``: the
        digest of the text ``settings`` came from (shown as ``beatra_config_info``)."""
        self.settings = settings
        self.metrics = Metrics()
        # Under --workers N, /metrics answers with every worker's series.
        self.worker_metrics = None if worker is None else WorkerMetrics(worker, self.metrics)
        rng = random.Random(seed)
        # Traces, when [telemetry] names an OTLP endpoint; None costs the request path nothing.
        self.tracing = build_tracing(
            settings.telemetry, {name: p.kind for name, p in settings.providers.items()}
        )
        self.stores = build_stores(settings, clock, wall_clock)
        stores_clock = self.stores.clock
        self.cooldowns = self.stores.cooldowns
        self.metrics.watch_cooldowns(lambda: self.cooldowns.cooling(stores_clock()))
        self.rate_limits = self.stores.rate_limits
        self.idempotency_store = self.stores.idempotency
        self.artifacts = Artifacts(
            self.stores.artifacts,
            ArtifactFiles(Path(settings.storage.path)),
            settings.storage,
            wall_clock,
        )
        self.task_store = self.stores.tasks
        music_adapters: dict[str, MusicAdapter] = {}
        image_adapters: dict[str, ImagesAdapter] = {}
        self.runner = TaskRunner(
            self.task_store,
            self.artifacts,
            music_adapters,
            settings.tasks,
            self.metrics,
            clock=clock,
            rng=rng,
            shared=self.stores.shared,
            lease_s=settings.state.task_lease_s,
            image_adapters=image_adapters,
        )
        self.operations = OperationsEndpoints(
            self.metrics, settings.server.metrics_token, self.worker_metrics
        )
        self.services = Services(
            self.metrics,
            self.stores,
            self.artifacts,
            self.runner,
            Idempotency(settings.idempotency, self.idempotency_store, self.metrics, stores_clock),
            LoadShedder(settings.limits.max_concurrency, self.metrics),
            self.operations,
            self.tracing,
            stores_clock,
            rng,
            music_adapters,
            image_adapters,
        )
        self.generation = build_generation(settings, self.services)
        self._edge = EdgeMiddleware(self.generation.router, self.metrics, self.tracing)
        self.install(self.generation)
        self.reloader = Reloader(self, source, sha256)

    @property
    def routes(self) -> list[Route]:
        return self.generation.routes

    @property
    def adapters(self) -> dict[str, ChatAdapter]:
        return self.generation.adapters

    def install(self, generation: Generation) -> None:
        """Make ``generation`` the live one: new requests are dispatched to its router."""
        self.generation = generation
        self.settings = generation.settings
        self.services.music_adapters.clear()
        self.services.music_adapters.update(generation.music_adapters)
        self.services.image_adapters.clear()
        self.services.image_adapters.update(generation.image_adapters)
        self.services.shedder.limit = generation.settings.limits.max_concurrency
        if self.tracing is not None:
            self.tracing.learn_providers(
                {name: p.kind for name, p in generation.settings.providers.items()}
            )
        self.operations.publish(generation.routes)
        self._edge.app = generation.router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        await self._edge(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for adapter in self.generation.all_adapters():
                        await adapter.start()
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
                self.reloader.listen()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.worker_metrics is not None:
                    await self.worker_metrics.close()
                await self.reloader.stop()
                await self.runner.stop()
                for adapter in self.generation.all_adapters():
                    await adapter.close()
                await self.stores.close()
                if self.tracing is not None:
                    await asyncio.to_thread(self.tracing.close)  # flushes the last spans
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(
    settings: Settings,
    *,
    clock: Callable[[], float] = time.monotonic,
    seed: int | None = None,
    wall_clock: Callable[[], float] = time.time,
    worker: WorkerSlot | None = None,
    source: ConfigSource | None = None,
    sha256: str = "",
) -> Gateway:
    return Gateway(
        settings,
        clock=clock,
        seed=seed,
        wall_clock=wall_clock,
        worker=worker,
        source=source,
        sha256=sha256,
    )
