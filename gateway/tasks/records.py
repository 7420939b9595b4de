"""A new task's record, as the create endpoints (music, and images asked for asynchronously)
queue it for the runner."""

from __future__ import annotations

from typing import Any

from gateway.contract.ids import new_task_id
from gateway.policy.routing import Candidate
from gateway.stores.base import Task


def queued_task(
    owner: str,
    task_type: str,
    plan: list[Candidate],
    params: dict[str, Any],
    *,
    request_id: str,
    now: int,
) -> Task:
    """A queued task: its ``params`` and the plan of deployments a submission falls through
    (``gateway.tasks.submit`` reads each target's provider and upstream model)."""
    targets = [
        {
            "model": c.model.id,
            "provider": c.deployment.provider,
            "upstream_model": c.deployment.model,
        }
        for c in plan
    ]
    return Task(
        task_id=new_task_id(),
        owner=owner,
        type=task_type,
        status="queued",
        model=plan[0].model.id,
        created_at=now,
        updated_at=now,
        params={**params, "plan": targets},
        request_id=request_id,
    )
