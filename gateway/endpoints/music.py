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
from gateway.contract.errors import GatewayError
from gateway.contract.ids import new_task_id
from gateway.contract.music_validate import reference_mode_for, supporting, validate_music
from gateway.http.asgi import Request
from gateway.http.body import read_json_object
from gateway.policy.auth import KeyRing
from gateway.policy.idempotency import Idempotency, Ticket
from gateway.policy.ratelimit import RateLimiter
from gateway.policy.routing import Catalog
from gateway.stores.base import Task, TaskStore
from gateway.tasks.runner import TaskRunner
from providers.music.base import MusicAdapter


def public_task(task: Task) -> dict[str, Any]:
    """A task as the API shows it (the runner's bookkeeping stays inside)."""
    body: dict[str, Any] = {
        "task_id": task.task_id,
        "object": "task",
        "type": task.type,
        "status": task.status,
        "model": task.model,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
    }
    if task.progress is not None:
        body["progress"] = task.progress
    if task.result is not None:
        body["result"] = task.result
    if task.error is not None:
        body["error"] = task.error
    return body


class MusicEndpoint:
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
        self._keys = keys
        self._catalog = catalog
        self._adapters = adapters
        self._artifacts = artifacts
        self._tasks = tasks
        self._runner = runner
        self._limiter = limiter
        self._idempotency = idempotency
        self._body_limit = body_limit

    async def __call__(self, request: Request) -> None:
        ctx = request.ctx
        key = self._keys.authenticate(request)
        body = await read_json_object(request, self._body_limit)
        ask = validate_music(body)
        plan = supporting(
            ask, self._catalog.resolve(ask.model, key, ask.capability), self._adapters
        )
        ctx.model_asked = ask.model
        if ask.reference_artifact_id is not None:
            try:
                await self._artifacts.lookup(ask.reference_artifact_id, key.name)
            except GatewayError as error:
                error.details = [{"field": "reference_artifact_id", "issue": "no such artifact"}]
                raise
        ticket: Ticket | None = await self._idempotency.begin(request, key.name, body)
        if ctx.replayed:
            return
        try:
            plan, _ = await self._limiter.admit(key, plan, None)
            first = plan[0]
            params = ask.params()
            params["reference_mode"] = reference_mode_for(
                ask, self._adapters[first.deployment.provider]
            )
            params["plan"] = [
                {
                    "model": c.model.id,
                    "provider": c.deployment.provider,
                    "upstream_model": c.deployment.model,
                }
                for c in plan
            ]
            now = self._artifacts.now()
            task = Task(
                task_id=new_task_id(),
                owner=key.name,
                type=ask.capability,
                status="queued",
                model=first.model.id,
                created_at=now,
                updated_at=now,
                params=params,
                request_id=ctx.request_id,
            )
            await self._tasks.create(task)
            ctx.model_served = first.model.id
            self._runner.launch(task)
            await self._idempotency.respond_and_keep(request, ticket, 202, public_task(task))
        finally:
            if ticket is not None:
                await self._idempotency.release(ticket)  # unless kept: then a no-op
