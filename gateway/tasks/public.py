"""A task as the API shows it: what ``POST /v1/music/generations`` answers and ``/v1/tasks``
lists and returns. The runner's bookkeeping (plan, job, lease) stays inside.
"""

from __future__ import annotations

from typing import Any

from gateway.stores.base import Task


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
