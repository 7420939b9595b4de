"""``POST /v1/music/generations``: validate, check the models can do it, create a task, 202.

Reads top to bottom as the request path: auth -> body -> validate -> route (only deployments
whose adapter supports the asked format, duration, lyrics and reference mode) -> reference
artifact (owner only) -> idempotency -> rate limit -> create the task -> hand it to the runner.
The answer is the task itself; the work happens in ``gateway.tasks.runner``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.artifacts.files import Artifacts
from gateway.config.settings import KeySettings
from gateway.contract.errors import GatewayError
from gateway.contract.music_validate import (
    MusicAsk,
    reference_mode_for,
    supporting,
    validate_music,
)
from gateway.contract.schemas_catalog import music_request_schema
from gateway.http.asgi import Request
from gateway.http.body import read_json_object
from gateway.policy.auth import KeyRing
from gateway.policy.create import CreateEndpoint, Prepared
from gateway.policy.idempotency import Idempotency, Ticket
from gateway.policy.ratelimit import RateLimiter
from gateway.policy.routing import Candidate, Catalog
from gateway.stores.base import TaskStore
from gateway.tasks.public import public_task
from gateway.tasks.records import queued_task
from gateway.tasks.runner import TaskRunner
from providers.music.base import MusicAdapter


class PreparedMusic(Prepared):
    """A music request past validation, model and reference checks."""

    __slots__ = ("ask", "body", "path", "plan")

    def __init__(
        self, path: str, body: dict[str, Any], ask: MusicAsk, plan: list[Candidate]
    ) -> None:
        self.path = path
        self.body = body
        self.ask = ask
        self.plan = plan

    def fingerprint(self) -> str:
        return Idempotency.fingerprint("POST", self.path, self.body)


class MusicEndpoint(CreateEndpoint[PreparedMusic]):
    def __init__(
        self,
        keys: KeyRing,
        catalog: Catalog,
        adapters: Mapping[str, MusicAdapter],
        *,
        artifacts: Artifacts,
        tasks: TaskStore,
        runner: TaskRunner,
        limiter: RateLimiter,
        idempotency: Idempotency,
        body_limit: int,
    ) -> None:
        super().__init__(keys, idempotency)
        self._catalog = catalog
        self._adapters = adapters
        self._artifacts = artifacts
        self._tasks = tasks
        self._runner = runner
        self._limiter = limiter
        self._body_limit = body_limit

    def request_schema(self) -> dict[str, Any]:
        """The request body's JSON Schema for this catalog (for ``/openapi.json``)."""
        return music_request_schema(self._catalog, self._adapters)

    async def prepare(self, request: Request, key: KeySettings) -> PreparedMusic:
        body = await read_json_object(request, self._body_limit)
        ask = validate_music(body)
        plan = supporting(
            ask, self._catalog.resolve(ask.model, key, ask.capability), self._adapters
        )
        request.ctx.model_asked = ask.model
        if ask.reference_artifact_id is not None:
            try:
                await self._artifacts.lookup(ask.reference_artifact_id, key.name)
            except GatewayError as error:
                error.details = [{"field": "reference_artifact_id", "issue": "no such artifact"}]
                raise
        return PreparedMusic(request.path, body, ask, plan)

    async def run(
        self, request: Request, key: KeySettings, prepared: PreparedMusic, ticket: Ticket | None
    ) -> None:
        ask = prepared.ask
        plan, _ = await self._limiter.admit(key, prepared.plan, None)
        first = plan[0]
        params = ask.params()
        params["reference_mode"] = reference_mode_for(
            ask, self._adapters[first.deployment.provider]
        )
        task = queued_task(
            key.name,
            ask.capability,
            plan,
            params,
            request_id=request.ctx.request_id,
            now=self._artifacts.now(),
        )
        await self._tasks.create(task)
        request.ctx.model_served = first.model.id
        self._runner.launch(task)
        await self._idempotency.respond_and_keep(request, ticket, 202, public_task(task))
