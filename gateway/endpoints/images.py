"""``POST /v1/images/generations`` and ``/v1/images/edits``: OpenAI's images surface over the
catalog's image models.

Reads top to bottom as the request path, on the create-POST pipeline: auth -> body -> validate
-> route (models with ``image.text`` whose adapter can make the asked size, format, ``n`` and
background) -> idempotency -> rate limit (the call counts as one request) -> relay (retries,
fallback, cooldowns: the same machinery as embeddings) -> answer. ``response_format: "url"``
stores each image as an artifact of the calling key and answers the gateway's own content URL
(``/v1/artifacts/{id}/content``, owner-only); a provider's URL is never handed out. Edits
(``ImageEditsEndpoint``) read their multipart form first, then take the same path with
capability ``image.edit``.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.artifacts.files import Artifacts
from gateway.artifacts.media import (
    IMAGE_HEAD_BYTES,
    SNIFF_BYTES,
    check_pixels,
    image_dimensions,
)
from gateway.config.settings import KeySettings
from gateway.contract.errors import GatewayError, invalid
from gateway.contract.images_validate import ImageAsk, from_form, supporting, validate_image
from gateway.contract.schemas_images import edits_request_schema, images_request_schema
from gateway.http.asgi import JSON_HEADERS, Request
from gateway.http.disconnect import cancel_on_disconnect
from gateway.http.multipart import boundary, collect_form
from gateway.metrics import Metrics
from gateway.policy.auth import KeyRing
from gateway.policy.create import CreateEndpoint, Prepared
from gateway.policy.idempotency import Idempotency, Ticket
from gateway.policy.ratelimit import RateLimiter
from gateway.policy.relay import PlanRelay, RelayCanceled, RelayFailed
from gateway.policy.routing import Candidate, Catalog
from gateway.stores.base import TaskStore
from gateway.tasks.image_jobs import image_task, prefers_async
from gateway.tasks.public import public_task
from gateway.tasks.runner import TaskRunner
from providers.base import ChatCall
from providers.images.base import (
    EXTENSIONS,
    ImageOutput,
    ImageRequest,
    ImagesAdapter,
    InputImage,
    sniff_image,
)

FILE_FIELDS = frozenset({"image", "image[]", "mask"})
MAX_IMAGES = 16  # as OpenAI's GPT image models take
# An edit's files are held in memory while it runs: at most this much (or the upload limit).
MAX_EDIT_BYTES = 50 * 1024 * 1024


def image_request(
    ask: ImageAsk, call: ChatCall, images: tuple[InputImage, ...], mask: InputImage | None
) -> ImageRequest:
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
        mask=mask,
        strength=ask.strength,
    )


def base_url(request: Request) -> str:
    """Where the client reached this gateway, for the content URLs of ``response_format:
    url`` (the Host header: the same client reads it back)."""
    host = (request.header(b"host") or b"localhost").decode("latin-1")
    scheme = "https" if request.scope.get("scheme") == "https" else "http"
    return f"{scheme}://{host}"


@dataclass(slots=True)
class PreparedImages(Prepared):
    """An image request past validation and routing."""

    path: str
    body: dict[str, Any]
    ask: ImageAsk
    plan: list[Candidate]
    asynchronous: bool  # Prefer: respond-async

    def fingerprint(self) -> str:
        # A task and an answer are different outcomes: an Idempotency-Key tells them apart.
        path = self.path + "#async" if self.asynchronous else self.path
        return Idempotency.fingerprint("POST", path, self.body)


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
        tasks: TaskStore,
        runner: TaskRunner,
    ) -> None:
        super().__init__(keys, idempotency)
        self._tasks = tasks
        self._runner = runner
        self.catalog = catalog
        self._relay = relay
        self.adapters = adapters
        self.artifacts = artifacts
        self._limiter = limiter
        self._metrics = metrics
        self.json_body_limit = body_limit

    def request_schema(self) -> dict[str, Any]:
        """The request body's JSON Schema for this catalog (for ``/openapi.json``)."""
        return images_request_schema(self.catalog, self.adapters)

    def check(self, request: Request, key: KeySettings, body: dict[str, Any]) -> PreparedImages:
        ask = validate_image(body, edit=False)
        plan = supporting(ask, self.catalog.resolve(ask.model, key, ask.capability), self.adapters)
        request.ctx.model_asked = ask.model
        asynchronous = prefers_async(request.header(b"prefer"))
        return PreparedImages(request.path, body, ask, plan, asynchronous)

    def run(
        self, request: Request, key: KeySettings, prepared: PreparedImages, ticket: Ticket | None
    ) -> Awaitable[None]:
        return self.serve(
            request,
            key,
            prepared.ask,
            prepared.plan,
            asynchronous=prepared.asynchronous,
            ticket=ticket,
        )

    async def serve(
        self,
        request: Request,
        key: KeySettings,
        ask: ImageAsk,
        plan: list[Candidate],
        *,
        images: tuple[InputImage, ...] = (),
        mask: InputImage | None = None,
        asynchronous: bool,
        ticket: Ticket | None,
    ) -> None:
        """Make the images and answer OpenAI's ``ImagesResponse`` (``asynchronous``: queue a
        task and answer 202 instead)."""
        # Rate limits come after the Idempotency-Key: a replay is never charged.
        plan, reservation = await self._limiter.admit(key, plan, None)
        if asynchronous:
            await self._enqueue(request, key, ask, plan, images=images, mask=mask, ticket=ticket)
            return
        ctx = request.ctx

        def attempt(adapter: ImagesAdapter, call: ChatCall) -> Awaitable[list[ImageOutput]]:
            return adapter.generate(image_request(ask, call, images, mask))

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

    async def _enqueue(
        self,
        request: Request,
        key: KeySettings,
        ask: ImageAsk,
        plan: list[Candidate],
        *,
        images: tuple[InputImage, ...],
        mask: InputImage | None,
        ticket: Ticket | None,
    ) -> None:
        """``Prefer: respond-async``: answer 202 with a task; the runner makes the images and
        keeps them as output artifacts. An edit's files are kept as upload artifacts of the key
        first (an ``image_artifact_id`` is used as it is), so the task's record says it all."""
        image_ids = [
            ask.image_artifact_id
            if index == 0 and ask.image_artifact_id is not None
            else await self._keep(key, image.data, image.content_type, "upload")
            for index, image in enumerate(images)
        ]
        mask_id = None
        if mask is not None:
            mask_id = await self._keep(key, mask.data, mask.content_type, "upload")
        task = image_task(
            key.name,
            ask,
            plan,
            (image_ids, mask_id),
            request_id=request.ctx.request_id,
            now=self.artifacts.now(),
        )
        await self._tasks.create(task)
        request.ctx.model_served = task.model
        self._runner.launch(task)
        await self._idempotency.respond_and_keep(request, ticket, 202, public_task(task))

    async def _keep(self, key: KeySettings, data: bytes, content_type: str, kind: str) -> str:
        """An image kept as an artifact of the key (``kind``: output, or upload for the inputs
        of an async edit); its id."""
        record = await self.artifacts.keep_image(
            data,
            owner=key.name,
            kind=kind,
            extension=EXTENSIONS.get(content_type, "bin"),
            content_type=content_type,
        )
        self._metrics.artifact_bytes.labels(kind).inc(record.bytes)
        return record.artifact_id

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
            "created": self.artifacts.now(),
            "data": data,
            "background": "transparent" if ask.background == "transparent" else "opaque",
            "output_format": ask.output_format,
        }

    async def _store(
        self, request: Request, key: KeySettings, ask: ImageAsk, output: ImageOutput
    ) -> str:
        """One image kept as an output artifact of the key; its content URL."""
        artifact_id = await self._keep(key, output.data, output.content_type, "output")
        return f"{base_url(request)}/v1/artifacts/{artifact_id}/content"


@dataclass(slots=True)
class PreparedEdit(Prepared):
    """An edit whose whole form is in and checked: its images in memory, none decoded yet."""

    ask: ImageAsk
    plan: list[Candidate]
    images: tuple[InputImage, ...]
    mask: InputImage | None
    digest: str
    asynchronous: bool  # Prefer: respond-async

    def fingerprint(self) -> str:
        return self.digest


def _input_image(data: bytes, field: str) -> InputImage:
    """A client's image, typed by its bytes and refused over the pixel limit from its header."""
    content_type = sniff_image(data[:SNIFF_BYTES])
    if content_type is None:
        raise GatewayError(
            "unsupported_media_type", f"The file in {field!r} is not a PNG, JPEG or WebP image."
        )
    size = image_dimensions(data[:IMAGE_HEAD_BYTES], content_type)
    if size is None:
        raise invalid([{"field": field, "issue": "the image's header is unreadable"}])
    check_pixels(size, field)
    return InputImage(data, content_type)


class ImageEditsEndpoint(CreateEndpoint[PreparedEdit]):
    """``POST /v1/images/edits``: multipart, one or more ``image`` parts (or ``image[]``, as the
    SDKs send a list; or ``image_artifact_id``, an upload of this key) and an optional ``mask``,
    with the same fields as a generation. The whole form (at most ``max_bytes`` of files) is
    read into memory; every image is sniffed and its header's size checked before any decode."""

    keeps_errors = True

    def __init__(
        self, keys: KeyRing, idempotency: Idempotency, images: ImagesEndpoint, max_bytes: int
    ) -> None:
        super().__init__(keys, idempotency)
        self._images = images
        self._max_bytes = max_bytes

    def request_schema(self) -> dict[str, Any]:
        return edits_request_schema(self._images.catalog, self._images.adapters)

    async def prepare(self, request: Request, key: KeySettings) -> PreparedEdit:
        found = boundary(request, "the image in field 'image'")
        form = await collect_form(
            request, found, file_fields=FILE_FIELDS, max_file_bytes=self._max_bytes
        )
        ask = validate_image(from_form(form.fields), edit=True)
        images = [_input_image(f.data, "image") for f in form.files if f.name != "mask"]
        masks = [_input_image(f.data, "mask") for f in form.files if f.name == "mask"]
        if len(masks) > 1:
            raise invalid([{"field": "mask", "issue": "at most one mask"}])
        if len(images) + (ask.image_artifact_id is not None) > MAX_IMAGES:
            raise invalid([{"field": "image", "issue": f"at most {MAX_IMAGES} images"}])
        if ask.image_artifact_id is not None:  # the image to edit; any parts lend colours
            images = [await self._artifact_image(ask.image_artifact_id, key), *images]
        if not images:
            raise invalid(
                [{"field": "image", "issue": "required: an image file, or image_artifact_id"}]
            )
        catalog = self._images.catalog
        plan = supporting(
            ask,
            catalog.resolve(ask.model, key, ask.capability),
            self._images.adapters,
            mask=bool(masks),
        )
        request.ctx.model_asked = ask.model
        digest = hashlib.sha256(orjson.dumps(sorted(form.fields.items())))
        asynchronous = prefers_async(request.header(b"prefer"))
        if asynchronous:  # a task, not an answer: another outcome for the Idempotency-Key
            digest.update(b"#async")
        for image in (*images, *masks):
            digest.update(hashlib.sha256(image.data).digest())
        mask = masks[0] if masks else None
        return PreparedEdit(
            ask,
            plan,
            tuple(images),
            mask,
            digest=f"{request.path}:{digest.hexdigest()}",
            asynchronous=asynchronous,
        )

    async def _artifact_image(self, artifact_id: str, key: KeySettings) -> InputImage:
        """An uploaded (or generated) image of this key, read back from disk."""
        artifacts = self._images.artifacts
        try:
            record = await artifacts.lookup(artifact_id, key.name)
        except GatewayError as error:
            error.details = [{"field": "image_artifact_id", "issue": "no such artifact"}]
            raise
        if not record.content_type.startswith("image/") or record.bytes > self._max_bytes:
            issue = f"an image artifact of at most {self._max_bytes} bytes"
            raise invalid([{"field": "image_artifact_id", "issue": issue}])
        return _input_image(await artifacts.read_whole(record), "image_artifact_id")

    def run(
        self, request: Request, key: KeySettings, prepared: PreparedEdit, ticket: Ticket | None
    ) -> Awaitable[None]:
        return self._images.serve(
            request,
            key,
            prepared.ask,
            prepared.plan,
            images=prepared.images,
            mask=prepared.mask,
            asynchronous=prepared.asynchronous,
            ticket=ticket,
        )
