"""``create_app``: builds the whole gateway from ``Settings``; nothing happens at import time.

The returned object is a plain ASGI application. Its lifespan opens the adapters' connection
pools and closes them on shutdown. The route table defined here drives both dispatch and
``/openapi.json``.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from gateway import __version__
from gateway.artifacts.files import ArtifactFiles, Artifacts
from gateway.config.settings import Settings
from gateway.contract.errors import GatewayError
from gateway.contract.openapi import build_openapi
from gateway.contract.schemas import (
    CHAT_REQUEST,
    CHAT_RESPONSE,
    CHAT_STREAM,
    HEALTH,
    MODEL,
    MODEL_LIST,
)
from gateway.contract.schemas_music import (
    ARTIFACT,
    MUSIC_REQUEST,
    TASK,
    TASK_LIST,
    TASK_QUERY,
    UPLOAD_REQUEST,
)
from gateway.endpoints.artifacts import ArtifactEndpoints
from gateway.endpoints.chat import ChatEndpoint
from gateway.endpoints.models import CatalogEndpoints
from gateway.endpoints.music import MusicEndpoint
from gateway.endpoints.tasks import TaskEndpoints
from gateway.endpoints.uploads import UploadEndpoint
from gateway.http.asgi import ASGIApp, Receive, Request, Scope, Send
from gateway.http.middleware import EdgeMiddleware
from gateway.http.router import Route, Router
from gateway.metrics import Metrics
from gateway.policy.auth import KeyRing, bearer_token
from gateway.policy.idempotency import Idempotency
from gateway.policy.ratelimit import LoadShedder, RateLimiter
from gateway.policy.relay import Relay
from gateway.policy.routing import Catalog
from gateway.stores.build import build_stores
from gateway.tasks.runner import TaskRunner
from providers.base import ChatAdapter
from providers.music.base import MusicAdapter
from providers.registry import ADAPTERS, MUSIC_ADAPTERS, build_adapter, build_music_adapter


def _json(schema: dict[str, object]) -> dict[str, object]:
    return {"application/json": {"schema": schema}}


class Gateway:
    """The application: middleware around the router, plus the lifespan of its resources."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.metrics = Metrics()
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
        rng = random.Random(seed)
        self.stores = build_stores(settings, clock, wall_clock)
        stores_clock = self.stores.clock
        self.cooldowns = self.stores.cooldowns
        self.metrics.watch_cooldowns(lambda: self.cooldowns.cooling(stores_clock()))
        keys = KeyRing(settings.keys)
        catalog = Catalog(settings, rng)
        relay = Relay(
            self.adapters, settings.relay, self.cooldowns, self.metrics, clock=stores_clock, rng=rng
        )
        self.rate_limits = self.stores.rate_limits
        self.idempotency_store = self.stores.idempotency
        limiter = RateLimiter(settings, self.rate_limits, self.metrics, stores_clock)
        idempotency = Idempotency(
            settings.idempotency, self.idempotency_store, self.metrics, stores_clock
        )
        body_limit = settings.server.max_body_bytes
        chat = ChatEndpoint(
            keys,
            catalog,
            relay,
            self.metrics,
            limiter=limiter,
            shedder=LoadShedder(settings.limits.max_concurrency, self.metrics),
            idempotency=idempotency,
            body_limit=body_limit,
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
        artifact_api = ArtifactEndpoints(keys, self.artifacts)
        tasks = TaskEndpoints(keys, self.task_store, self.runner)
        self.routes = [
            Route(
                "POST",
                "/v1/chat/completions",
                chat,
                "Create a chat completion (OpenAI-compatible; stream with stream: true)",
                "Chat",
                request_schema=CHAT_REQUEST,
                responses={
                    200: {**_json(CHAT_RESPONSE), "text/event-stream": {"schema": CHAT_STREAM}}
                },
            ),
            Route(
                "GET",
                "/v1/models",
                models.list_models,
                "List the models this key may use",
                "Models",
                responses={200: _json(MODEL_LIST)},
            ),
            Route(
                "GET",
                "/v1/models/{id}",
                models.get_model,
                "Inspect one model",
                "Models",
                responses={200: _json(MODEL)},
            ),
            Route(
                "POST",
                "/v1/music/generations",
                music,
                "Create a music generation task (text-to-music, or reference audio)",
                "Music",
                request_schema=MUSIC_REQUEST,
                responses={202: _json(TASK)},
            ),
            Route(
                "POST",
                "/v1/uploads",
                uploads,
                "Upload one audio file (multipart field 'file', up to 100 MB)",
                "Uploads",
                request_schema=UPLOAD_REQUEST,
                request_media="multipart/form-data",
                responses={200: _json(ARTIFACT)},
            ),
            Route(
                "GET",
                "/v1/artifacts/{id}",
                artifact_api.metadata,
                "Inspect an artifact (an upload or generated audio)",
                "Artifacts",
                responses={200: _json(ARTIFACT)},
            ),
            Route(
                "GET",
                "/v1/artifacts/{id}/content",
                artifact_api.content,
                "Download an artifact's bytes (Range supported)",
                "Artifacts",
                responses={
                    200: {"audio/*": {"schema": {"type": "string", "format": "binary"}}},
                    206: {"audio/*": {"schema": {"type": "string", "format": "binary"}}},
                },
            ),
            Route(
                "GET",
                "/v1/tasks",
                tasks.list,
                "List this key's tasks, newest first",
                "Tasks",
                query=tuple(TASK_QUERY),
                responses={200: _json(TASK_LIST)},
            ),
            Route(
                "GET",
                "/v1/tasks/{id}",
                tasks.get,
                "Inspect a task",
                "Tasks",
                responses={200: _json(TASK)},
            ),
            Route(
                "POST",
                "/v1/tasks/{id}/cancel",
                tasks.cancel,
                "Cancel a task (final at once; the provider is told where it can be)",
                "Tasks",
                responses={200: _json(TASK)},
            ),
            Route(
                "GET",
                "/v1/health",
                self.health,
                "Service health (no auth, no upstream call)",
                "Health",
                auth=False,
                responses={200: _json(HEALTH)},
            ),
            Route(
                "GET",
                "/metrics",
                self.metrics_text,
                "Prometheus metrics",
                "Operations",
                auth=False,
                public=False,
            ),
            Route(
                "GET",
                "/openapi.json",
                self.openapi,
                "This specification",
                "Operations",
                auth=False,
                public=False,
            ),
        ]
        self._openapi_body = orjson.dumps(build_openapi(self.routes))
        self._health_body = orjson.dumps({"status": "ok", "version": __version__})
        router = Router(self.routes, keys.authenticate)
        self._app: ASGIApp = EdgeMiddleware(router, self.metrics)

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
                    await self.artifacts.collect_orphans()
                    await self.runner.start(
                        self.settings.storage.sweep_interval_s,
                        self.settings.tasks.task_retention_s,
                    )
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.runner.stop()
                for adapter in self.adapters.values():
                    await adapter.close()
                for music_adapter in self.music_adapters.values():
                    await music_adapter.close()
                await self.stores.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def health(self, request: Request) -> None:
        await request.respond_bytes(200, self._health_body)

    async def openapi(self, request: Request) -> None:
        await request.respond_bytes(200, self._openapi_body)

    async def metrics_text(self, request: Request) -> None:
        token = self.settings.server.metrics_token
        if token is not None:
            presented = bearer_token(request) or b""
            # Digests of equal length: the comparison reveals nothing, not even the length.
            if not hmac.compare_digest(
                hashlib.sha256(presented).digest(), hashlib.sha256(token.encode()).digest()
            ):
                raise GatewayError("invalid_api_key", "GET /metrics needs the metrics token.")
        await request.respond_bytes(
            200, self.metrics.render(), [(b"content-type", b"text/plain; version=0.0.4")]
        )


def create_app(
    settings: Settings,
    clock: Callable[[], float] = time.monotonic,
    seed: int | None = None,
    wall_clock: Callable[[], float] = time.time,
) -> Gateway:
    return Gateway(settings, clock=clock, seed=seed, wall_clock=wall_clock)
