"""A fake fal.ai queue server (``queue.fal.run``) with in-memory requests and faults.

The wire format it speaks, as fal documents it (Queue API, Model Errors, Request Errors, and the
model pages of ``fal-ai/stable-audio`` and ``fal-ai/ace-step/audio-to-audio``):

- Auth: ``Authorization: Key <FAL_KEY>``; anything else gets 401 ``{"detail": ...}``.
- Submit: ``POST /{model_id}`` with the model's input JSON -> 200 ``{request_id, response_url,
  status_url, cancel_url, queue_position}``. Those URLs keep only the owner/app of the model id
  (``/{owner}/{app}/requests/{id}[/status|/cancel]``), so clients must use them as given.
- Status: ``GET status_url`` -> ``{status, request_id, response_url, queue_position, logs}``:
  202 while ``IN_QUEUE``/``IN_PROGRESS``, 200 (plus ``metrics``) once ``COMPLETED``. A request
  moves on one state every ``plan.polls_per_state`` polls.
- Result: ``GET response_url`` -> the model's output (200) or its error with its own status:
  model errors ``{"detail": [{loc, msg, type, url}]}`` (422), request errors ``{"detail": str,
  "error_type": str}`` plus ``X-Fal-Error-Type``; 400 before completion.
- Cancel: ``PUT cancel_url`` -> 202 ``CANCELLATION_REQUESTED``, 400 ``ALREADY_COMPLETED`` or 404
  ``NOT_FOUND`` (as ``{"status": ...}``); a canceled request's result is 499 ``client_cancelled``.
- Outputs: ``{"audio_file": File}`` for ``fal-ai/stable-audio``, ``{"audio": File, seed, tags,
  lyrics}`` otherwise; ``File`` is ``{url, content_type, file_name, file_size}``, its URL public.
- Inputs are checked as documented: stable-audio needs ``prompt`` and whole ``seconds_total``
  0-47; ACE-Step needs ``tags`` (audio-to-audio also ``audio_url`` and ``original_tags``).

Faults: ``plan.push(...)`` (``status``, ``slow``, ``reset``, ``malformed``) hits the next request
of any kind, file downloads included. ``FalPlan`` adds fal's own: jobs that fail
(``fail_next_job``), expired file URLs (``file_status``), and a record of cancel calls.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.audio import tone_wav
from tests.fakes.faults import Fault, FaultPlan, play_shared_fault

ERRORS_DOC = "https://docs.fal.ai/errors"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class JobFailure:
    """How a failed job's result answers: the model's error status, body and headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class FalPlan(FaultPlan):
    """``FaultPlan`` plus fal's job-level controls and records."""

    def __init__(self) -> None:
        super().__init__()
        self._fal_lock = threading.Lock()
        self.polls_per_state = 1  # status polls spent IN_QUEUE, then as many IN_PROGRESS
        self.file_status: int | None = None  # set (e.g. 404, 410): output file URLs expired
        self.job_failures: deque[JobFailure] = deque()
        self.cancelled: list[str] = []  # request ids whose cancel reached a pending request

    def fail_next_job(
        self, status: int = 500, detail: Any = "Runner failed", error_type: str | None = None
    ) -> None:
        """The next submitted job completes with this error as its result."""
        body: dict[str, Any] = {"detail": detail}
        headers: dict[str, str] = {}
        if error_type is not None:
            body["error_type"] = error_type
            headers["X-Fal-Error-Type"] = error_type
        with self._fal_lock:
            self.job_failures.append(JobFailure(status, body, headers))

    def take_job_failure(self) -> JobFailure | None:
        with self._fal_lock:
            return self.job_failures.popleft() if self.job_failures else None

    def note_cancel(self, request_id: str) -> None:
        with self._fal_lock:
            self.cancelled.append(request_id)

    def reset(self) -> None:
        super().reset()
        with self._fal_lock:
            self.polls_per_state = 1
            self.file_status = None
            self.job_failures.clear()
            self.cancelled.clear()


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


def make_wav(seconds: float = 0.05, rate: int = 8000) -> bytes:
    """A short, valid mono 16-bit WAV (a 440 Hz tone)."""
    return tone_wav(seconds, rate)


WAV = make_wav()


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), headers=headers, content_type="application/json"
    )


def _problem(name: str, msg: str, kind: str) -> dict[str, Any]:
    """One item of a model error's ``detail`` list."""
    return {"loc": ["body", name], "msg": msg, "type": kind, "url": f"{ERRORS_DOC}#{kind}"}


def _fault_response(fault: Fault) -> web.Response:
    detail: Any = fault.message
    if fault.status == 422:
        detail = [_problem("prompt", fault.message, "value_error")]
    return _json(fault.status, {"detail": detail}, fault.headers)


REQUIRED_INPUTS: dict[str, tuple[str, ...]] = {
    "fal-ai/stable-audio": ("prompt",),
    "fal-ai/ace-step": ("tags",),
    "fal-ai/ace-step/audio-to-audio": ("audio_url", "tags", "original_tags"),
}


def _input_problems(model_id: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    problems = [
        _problem(name, "field required", "missing")
        for name in REQUIRED_INPUTS.get(model_id, ())
        if not isinstance(body.get(name), str) or not body[name]
    ]
    seconds = body.get("seconds_total", 0)
    whole = isinstance(seconds, int) and not isinstance(seconds, bool)
    if model_id == "fal-ai/stable-audio" and not (whole and 0 <= seconds <= 47):
        problems.append(
            _problem("seconds_total", "Input should be an integer from 0 to 47", "int_range")
        )
    return problems


def _json_or_none(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def make_app(plan: FalPlan, api_key: str | None = None) -> web.Application:
    """The fake queue; ``api_key`` set: requests must carry ``Authorization: Key <api_key>``."""
    jobs: dict[str, Job] = {}
    expected_auth = None if api_key is None else f"Key {api_key}"

    @web.middleware
    async def faults(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Record every request and play its fault before the endpoint sees it."""
        body = _json_or_none(await request.read()) if request.method == "POST" else None
        plan.record_request(request, body)
        fault = plan.take()
        # Output files are public CDN URLs; only the queue checks the key.
        queue_call = not request.path.startswith("/files/")
        if queue_call and expected_auth and request.headers.get("authorization") != expected_auth:
            fault = Fault(name="status", status=401, message="No user found for Key")
        early = await play_shared_fault(
            request, plan, fault, _fault_response, malformed=b'{"request_id": '
        )
        return early if early is not None else await handler(request)

    def urls(request: web.Request, job_id: str, app_path: str) -> dict[str, str]:
        base = f"{request.url.origin()}/{app_path}/requests/{job_id}"
        return {
            "response_url": base,
            "status_url": base + "/status",
            "cancel_url": base + "/cancel",
        }

    def find(request: web.Request) -> Job | None:
        job = jobs.get(request.match_info["request_id"])
        app_path = f"{request.match_info['owner']}/{request.match_info['app']}"
        return job if job is not None and job.app_path == app_path else None

    async def submit(request: web.Request) -> web.Response:
        body = _json_or_none(await request.read())
        model_id = request.match_info["model_id"]
        if not isinstance(body, dict):
            return _json(422, {"detail": [_problem("input", "Invalid JSON", "json_invalid")]})
        problems = _input_problems(model_id, body)
        if problems:
            return _json(422, {"detail": problems})
        job_id = str(uuid.uuid4())
        app_path = "/".join(model_id.split("/")[:2])
        jobs[job_id] = Job(model_id, app_path, body, plan.take_job_failure())
        return _json(
            200, {"request_id": job_id, **urls(request, job_id, app_path), "queue_position": 0}
        )

    async def status(request: web.Request) -> web.Response:
        job = find(request)
        if job is None:
            return _json(404, {"detail": "Request not found"})
        job.polls += 1
        state = job.state(plan.polls_per_state)
        job_id = request.match_info["request_id"]
        answer: dict[str, Any] = {
            "status": state,
            "request_id": job_id,
            "response_url": urls(request, job_id, job.app_path)["response_url"],
            "logs": [] if request.query.get("logs") == "1" else None,
        }
        if state == "IN_QUEUE":
            answer["queue_position"] = 0
        if state == "COMPLETED":
            answer["metrics"] = {"inference_time": 0.01}
            return _json(200, answer)
        return _json(202, answer)

    async def result(request: web.Request) -> web.Response:
        job = find(request)
        if job is None:
            return _json(404, {"detail": "Request not found"})
        if job.state(plan.polls_per_state) != "COMPLETED":
            return _json(400, {"detail": "Request is still in progress"})
        if job.canceled:
            cancelled = {"detail": "Request was cancelled", "error_type": "client_cancelled"}
            return _json(499, cancelled, {"X-Fal-Error-Type": "client_cancelled"})
        if job.failure is not None:
            return _json(job.failure.status, job.failure.body, job.failure.headers)
        name = f"{request.match_info['request_id']}.wav"
        file = {
            "url": f"{request.url.origin()}/files/{name}",
            "content_type": "audio/wav",
            "file_name": name,
            "file_size": len(WAV),
        }
        if job.model_id == "fal-ai/stable-audio":
            return _json(200, {"audio_file": file})
        echoed = {key: job.input.get(key, "") for key in ("tags", "lyrics")}
        return _json(200, {"audio": file, "seed": job.input.get("seed", 42), **echoed})

    async def cancel(request: web.Request) -> web.Response:
        job = find(request)
        if job is None:
            return _json(404, {"status": "NOT_FOUND"})
        if job.state(plan.polls_per_state) == "COMPLETED":
            return _json(400, {"status": "ALREADY_COMPLETED"})
        job.canceled = True
        plan.note_cancel(request.match_info["request_id"])
        return _json(202, {"status": "CANCELLATION_REQUESTED"})

    async def file(request: web.Request) -> web.Response:
        if plan.file_status is not None:
            return web.Response(status=plan.file_status, text="NoSuchKey")
        return web.Response(body=WAV, content_type="audio/wav")

    app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[faults])
    app.router.add_get("/files/{name}", file)
    app.router.add_get("/{owner}/{app}/requests/{request_id}/status", status)
    app.router.add_get("/{owner}/{app}/requests/{request_id}", result)
    app.router.add_put("/{owner}/{app}/requests/{request_id}/cancel", cancel)
    app.router.add_post("/{model_id:.+}", submit)
    return app
