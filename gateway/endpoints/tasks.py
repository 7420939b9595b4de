"""``GET /v1/tasks``, ``GET /v1/tasks/{id}`` and ``POST /v1/tasks/{id}/cancel``: owner only.

The list is newest first with filters on ``status`` and ``type`` and an opaque cursor
(``after``: the last task id of the previous page). Another key's task is ``not_found``, exactly
like a task that never existed.
"""

from __future__ import annotations

import heapq
import re
from urllib.parse import parse_qsl

from gateway.contract.errors import MAX_LISTED_ISSUES, GatewayError, invalid
from gateway.contract.ids import TASK_ID
from gateway.contract.schemas_music import TASK_TYPES
from gateway.http.asgi import Request
from gateway.policy.auth import KeyRing
from gateway.stores.base import TERMINAL_TASK_STATES, Task, TaskStore
from gateway.tasks.public import public_task
from gateway.tasks.runner import TaskRunner

TASK_STATUSES = ("queued", "running", *sorted(TERMINAL_TASK_STATES))
DEFAULT_PAGE = 20
MAX_PAGE = 100
_LIMIT = re.compile(r"[0-9]{1,6}")


def _query(request: Request) -> dict[str, str]:
    raw = request.scope.get("query_string", b"").decode("latin-1")
    query: dict[str, str] = {}
    for name, value in parse_qsl(raw, keep_blank_values=True):
        query.setdefault(name, value)
    return query


class TaskEndpoints:
    def __init__(self, keys: KeyRing, store: TaskStore, runner: TaskRunner) -> None:
        self._keys = keys
        self._store = store
        self._runner = runner

    async def _owned(self, request: Request) -> Task:
        key = self._keys.authenticate(request)
        task_id = request.params["id"]
        task = await self._store.get(task_id) if TASK_ID.fullmatch(task_id) else None
        if task is None or task.owner != key.name:
            raise GatewayError("not_found", "No such task.")
        return task

    async def get(self, request: Request) -> None:
        await request.respond_json(200, public_task(await self._owned(request)))

    async def cancel(self, request: Request) -> None:
        task = await self._owned(request)
        if task.status in TERMINAL_TASK_STATES:
            raise GatewayError("task_not_cancelable", f"The task is already {task.status}.")
        await request.respond_json(200, public_task(await self._runner.cancel(task)))

    async def list(self, request: Request) -> None:
        key = self._keys.authenticate(request)
        query = _query(request)
        problems: list[dict[str, str]] = []
        status = query.get("status")
        if status is not None and status not in TASK_STATUSES:
            problems.append({"field": "status", "issue": f"one of {', '.join(TASK_STATUSES)}"})
        task_type = query.get("type")
        if task_type is not None and task_type not in TASK_TYPES:
            problems.append({"field": "type", "issue": f"one of {', '.join(TASK_TYPES)}"})
        after = query.get("after")
        if after is not None and not TASK_ID.fullmatch(after):
            problems.append({"field": "after", "issue": "a task id from a previous page"})
        limit_text = query.get("limit", str(DEFAULT_PAGE))
        # ASCII digits only, and few: str.isdigit() also accepts "²", which int() refuses.
        limit = int(limit_text) if _LIMIT.fullmatch(limit_text) else 0
        if not 1 <= limit <= MAX_PAGE:
            problems.append({"field": "limit", "issue": f"an integer from 1 to {MAX_PAGE}"})
        unknown = set(query) - {"status", "type", "after", "limit"}
        for name in heapq.nsmallest(MAX_LISTED_ISSUES + 1, unknown):
            problems.append({"field": name[:100], "issue": "unknown query parameter"})
        if problems:
            raise invalid(problems)
        page = await self._store.page(
            key.name, status=status, type=task_type, after=after, limit=limit
        )
        await request.respond_json(
            200,
            {
                "object": "list",
                "data": [public_task(t) for t in page.tasks],
                "has_more": page.next_cursor is not None,
                "next_cursor": page.next_cursor,
            },
        )
