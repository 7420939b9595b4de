"""The fal.ai queue both fake fal servers share (music and images): jobs, their URLs, polls,
cancels, result errors, and the auth and fault gate every call passes.

As fal's Queue API documents it: ``POST /{model_id}`` answers ``{request_id, response_url,
status_url, cancel_url, queue_position}`` whose URLs keep only the owner/app of the model id;
a job is ``IN_QUEUE``, then ``IN_PROGRESS``, then ``COMPLETED``; ``PUT cancel_url`` answers 202
``CANCELLATION_REQUESTED`` or 400 ``ALREADY_COMPLETED``, and a canceled job's result is 499
``client_cancelled``. What a model takes and answers stays in each fake.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.faults import Fault, FaultPlan, play_shared_fault

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Endpoint = Callable[[web.Request], Awaitable[web.Response]]


@dataclass
class JobFailure:
    """How a failed job's result answers: the model's error status, body and headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class QueuePlan(FaultPlan):
    """``FaultPlan`` plus the queue's pace and its record of cancels."""

    def __init__(self) -> None:
        super().__init__()
        self._fal_lock = threading.Lock()
        self.restore_switches()

    def restore_switches(self) -> None:
        self.polls_per_state = 1  # status polls spent IN_QUEUE, then as many IN_PROGRESS
        self.cancelled: list[str] = []  # request ids whose cancel reached a pending request

    def note_cancel(self, request_id: str) -> None:
        with self._fal_lock:
            self.cancelled.append(request_id)

    def reset(self) -> None:
        super().reset()
        with self._fal_lock:
            self.restore_switches()


@dataclass
class Job:
    model_id: str
    app_path: str  # owner/app: what fal's request URLs carry
    input: dict[str, Any]
    failure: JobFailure | None
    polls: int = 0
    canceled: bool = False

    def state(self, polls_per_state: int) -> str:
        if self.canceled or self.polls > 2 * polls_per_state:
            return "COMPLETED"
        return "IN_QUEUE" if self.polls <= polls_per_state else "IN_PROGRESS"


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), headers=headers, content_type="application/json"
    )


def json_or_none(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


class Queue:
    """One fake queue's jobs and the endpoints that are the same for every model."""

    def __init__(
        self,
        plan: QueuePlan,
        api_key: str | None,
        fault_response: Callable[[Fault], web.Response],
    ) -> None:
        self.plan = plan
        self.jobs: dict[str, Job] = {}
        self._expected_auth = None if api_key is None else f"Key {api_key}"
        self._fault_response = fault_response

    @web.middleware
    async def faults(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Record every request and play its fault before the endpoint sees it."""
        body = json_or_none(await request.read()) if request.method == "POST" else None
        self.plan.record_request(request, body)
        fault = self.plan.take()
        # Output files are public CDN URLs; only the queue checks the key.
        queue_call = not request.path.startswith("/files/")
        wrong_key = request.headers.get("authorization") != self._expected_auth
        if queue_call and self._expected_auth and wrong_key:
            fault = Fault(name="status", status=401, message="No user found for Key")
        early = await play_shared_fault(
            request, self.plan, fault, self._fault_response, malformed=b'{"request_id": '
        )
        return early if early is not None else await handler(request)

    @staticmethod
    def urls(request: web.Request, job_id: str, app_path: str) -> dict[str, str]:
        base = f"{request.url.origin()}/{app_path}/requests/{job_id}"
        return {
            "response_url": base,
            "status_url": base + "/status",
            "cancel_url": base + "/cancel",
        }

    def find(self, request: web.Request) -> Job | None:
        job = self.jobs.get(request.match_info["request_id"])
        app_path = f"{request.match_info['owner']}/{request.match_info['app']}"
        return job if job is not None and job.app_path == app_path else None

    def enqueue(
        self, request: web.Request, model_id: str, body: dict[str, Any], failure: JobFailure | None
    ) -> web.Response:
        """A new job for ``model_id``, answered as fal's submit does."""
        job_id = str(uuid.uuid4())
        app_path = "/".join(model_id.split("/")[:2])
        self.jobs[job_id] = Job(model_id, app_path, body, failure)
        urls = self.urls(request, job_id, app_path)
        return json_response(200, {"request_id": job_id, **urls, "queue_position": 0})

    def finished_job(self, request: web.Request) -> Job | web.Response:
        """The job whose output the result should answer, or the answer when that is not due:
        no such job, still running, canceled, or failed."""
        job = self.find(request)
        if job is None:
            return json_response(404, {"detail": "Request not found"})
        if job.state(self.plan.polls_per_state) != "COMPLETED":
            return json_response(400, {"detail": "Request is still in progress"})
        if job.canceled:
            cancelled = {"detail": "Request was cancelled", "error_type": "client_cancelled"}
            return json_response(499, cancelled, {"X-Fal-Error-Type": "client_cancelled"})
        if job.failure is not None:
            return json_response(job.failure.status, job.failure.body, job.failure.headers)
        return job

    async def cancel(self, request: web.Request) -> web.Response:
        job = self.find(request)
        if job is None:
            return json_response(404, {"status": "NOT_FOUND"})
        if job.state(self.plan.polls_per_state) == "COMPLETED":
            return json_response(400, {"status": "ALREADY_COMPLETED"})
        job.canceled = True
        self.plan.note_cancel(request.match_info["request_id"])
        return json_response(202, {"status": "CANCELLATION_REQUESTED"})

    def app(
        self, *, submit: Endpoint, status: Endpoint, result: Endpoint, file: Endpoint
    ) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self.faults])
        app.router.add_get("/files/{name}", file)
        app.router.add_get("/{owner}/{app}/requests/{request_id}/status", status)
        app.router.add_get("/{owner}/{app}/requests/{request_id}", result)
        app.router.add_put("/{owner}/{app}/requests/{request_id}/cancel", self.cancel)
        app.router.add_post("/{model_id:.+}", submit)
        return app
