"""``POST /v1/images/generations``: OpenAI's images surface over the catalog's image models.

Reads top to bottom as the request path, on the create-POST pipeline: auth -> body -> validate
-> route (models with ``image.text`` whose adapter can make the asked size, format, ``n`` and
background) -> idempotency -> rate limit (the call counts as one request) -> relay (retries,
fallback, cooldowns: the same machinery as embeddings) -> answer. ``response_format: "url"``
stores each image as an artifact of the calling key and answers the gateway's own content URL
(``/v1/artifacts/{id}/content``, owner-only); a provider's URL is never handed out.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Mapping
from typing import Any

import orjson

from gateway.artifacts.files import Artifacts
from gateway.config.settings import KeySettings
from gateway.contract.images_validate import ImageAsk, supporting, validate_image
from gateway.contract.schemas_images import images_request_schema
from gateway.http.asgi import JSON_HEADERS, Request
from gateway.http.disconnect import cancel_on_disconnect
from gateway.metrics import Metrics
from gateway.policy.auth import KeyRing
from gateway.policy.create import CreateEndpoint, Prepared
from gateway.policy.idempotency import Idempotency, Ticket
from gateway.policy.ratelimit import RateLimiter
from gateway.policy.relay import PlanRelay, RelayCanceled, RelayFailed
from gateway.policy.routing import Candidate, Catalog
from providers.base import ChatCall
from providers.images.base import ImageOutput, ImageRequest, ImagesAdapter, InputImage

EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


def image_request(ask: ImageAsk, call: ChatCall, images: tuple[InputImage, ...]) -> ImageRequest:
    """The adapter's request for one deployment (``call`` carries its upstream model id)."""
    return ImageRequest(
        upstream_model=call.upstream_model,
        request_id=call.request_id,
        prompt=ask.prompt,
        n=ask.n,
        size=ask.size,
        output_format=ask.output_format,
        quality=ask.quality,
        background=ask.background,
        seed=ask.seed,
        output_compression=ask.output_compression,
        images=images,
        strength=ask.strength,
    )


def base_url(request: Request) -> str:
    """Where the client reached this gateway, for the content URLs of ``response_format:
    url`` (the Host header: the same client reads it back)."""
    host = (request.header(b"host") or b"localhost").decode("latin-1")
    scheme = "https" if request.scope.get("scheme") == "https" else "http"
    return f"{scheme}://{host}"


class PreparedImages(Prepared):
    """An image request past validation and routing."""

    __slots__ = ("ask", "body", "path", "plan")

    def __init__(self, path: str, body: dict[str, Any], ask: ImageAsk, plan: list[Candidate]):
        self.path = path
        self.body = body
        self.ask = ask
        self.plan = plan

    def fingerprint(self) -> str:
        return Idempotency.fingerprint("POST", self.path, self.body)


class ImagesEndpoint(CreateEndpoint[PreparedImages]):
    keeps_errors = True  # a provider's 400 is the answer to this body: replay it

    def __init__(
        self,
        keys: KeyRing,
        catalog: Catalog,
        relay: PlanRelay[ImagesAdapter],
        adapters: Mapping[str, ImagesAdapter],
        *,
        artifacts: Artifacts,
        limiter: RateLimiter,
        idempotency: Idempotency,
        metrics: Metrics,
        body_limit: int,
    ) -> None:
        super().__init__(keys, idempotency)
        self._catalog = catalog
        self._relay = relay
        self._adapters = adapters
        self._artifacts = artifacts
        self._limiter = limiter
        self._metrics = metrics
        self.json_body_limit = body_limit

    def request_schema(self) -> dict[str, Any]:
        """The request body's JSON Schema for this catalog (for ``/openapi.json``)."""
        return images_request_schema(self._catalog, self._adapters)

    def check(self, request: Request, key: KeySettings, body: dict[str, Any]) -> PreparedImages:
        ask = validate_image(body, edit=False)
        plan = supporting(
            ask, self._catalog.resolve(ask.model, key, ask.capability), self._adapters
        )
        request.ctx.model_asked = ask.model
        return PreparedImages(request.path, body, ask, plan)

    def run(
        self, request: Request, key: KeySettings, prepared: PreparedImages, ticket: Ticket | None
    ) -> Awaitable[None]:
        return self.serve(request, key, prepared.ask, prepared.plan, (), ticket=ticket)

    async def serve(
        self,
        request: Request,
        key: KeySettings,
        ask: ImageAsk,
        plan: list[Candidate],
        images: tuple[InputImage, ...],
        *,
        ticket: Ticket | None,
    ) -> None:
        """Make the images and answer OpenAI's ``ImagesResponse``."""
        # Rate limits come after the Idempotency-Key: a replay is never charged.
        plan, reservation = await self._limiter.admit(key, plan, None)
        ctx = request.ctx

        def attempt(adapter: ImagesAdapter, call: ChatCall) -> Awaitable[list[ImageOutput]]:
            return adapter.generate(image_request(ask, call, images))

        async with cancel_on_disconnect(request) as guard:
            try:
                relayed = await self._relay.run(
                    plan, ChatCall({"model": ask.model}, "", ctx.request_id), attempt
                )
            except (RelayFailed, RelayCanceled) as ended:
                ctx.attempts = ended.attempts
                ctx.upstream_seconds = ended.upstream_seconds
                raise (ended.error if isinstance(ended, RelayFailed) else ended) from None
            candidate, outputs, ctx.attempts, ctx.upstream_seconds = relayed
            ctx.provider = candidate.deployment.provider
            ctx.model_served = candidate.model.id
            self._metrics.images.labels(candidate.model.id, ask.kind).inc(len(outputs))
            answer = await self._answer(request, key, ask, outputs)
            body = orjson.dumps(answer)
            if ticket is not None:
                ticket.record(body)
                await self._idempotency.finish(ticket, 200, b"application/json")
            guard.finishing()
            headers = JSON_HEADERS if reservation is None else [*JSON_HEADERS, *reservation.headers]
            await request.respond_bytes(200, body, headers)

    async def _answer(
        self, request: Request, key: KeySettings, ask: ImageAsk, outputs: list[ImageOutput]
    ) -> dict[str, Any]:
        data: list[dict[str, Any]] = []
        for output in outputs:
            item: dict[str, Any] = {}
            if ask.response_format == "url":
                item["url"] = await self._store(request, key, ask, output)
            else:
                item["b64_json"] = base64.b64encode(output.data).decode("ascii")
            if output.revised_prompt is not None:
                item["revised_prompt"] = output.revised_prompt
            data.append(item)
        return {
            "created": self._artifacts.now(),
            "data": data,
            "background": "transparent" if ask.background == "transparent" else "opaque",
            "output_format": ask.output_format,
        }

    async def _store(
        self, request: Request, key: KeySettings, ask: ImageAsk, output: ImageOutput
    ) -> str:
        """One image kept as an output artifact of the key; its content URL."""
        pending = self._artifacts.begin()
        extension = EXTENSIONS.get(output.content_type, "bin")
        try:
            await pending.write(output.data)
            record = await self._artifacts.publish(
                pending,
                owner=key.name,
                kind="output",
                filename=f"image-{pending.artifact_id}.{extension}",
                content_type=output.content_type,
            )
        finally:
            pending.discard()  # a no-op once published
        self._metrics.artifact_bytes.labels("output").inc(record.bytes)
        return f"{base_url(request)}/v1/artifacts/{record.artifact_id}/content"
