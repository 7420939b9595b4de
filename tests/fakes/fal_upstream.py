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

from collections import deque
from typing import Any

from aiohttp import web

from tests.fakes.audio import tone_wav
from tests.fakes.fal_queue import JobFailure, Queue, QueuePlan, json_or_none
from tests.fakes.fal_queue import json_response as _json
from tests.fakes.faults import Fault

ERRORS_DOC = "https://docs.fal.ai/errors"


class FalPlan(QueuePlan):
    """``QueuePlan`` plus fal's job-level controls and records."""

    def restore_switches(self) -> None:
        super().restore_switches()
        self.file_status: int | None = None  # set (e.g. 404, 410): output file URLs expired
        self.job_failures: deque[JobFailure] = deque()

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


def make_wav(seconds: float = 0.05, rate: int = 8000) -> bytes:
    """A short, valid mono 16-bit WAV (a 440 Hz tone)."""
    return tone_wav(seconds, rate)


WAV = make_wav()


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


def make_app(plan: FalPlan, api_key: str | None = None) -> web.Application:
    """The fake queue; ``api_key`` set: requests must carry ``Authorization: Key <api_key>``."""
    queue = Queue(plan, api_key, _fault_response)

    async def submit(request: web.Request) -> web.Response:
        body = json_or_none(await request.read())
        model_id = request.match_info["model_id"]
        if not isinstance(body, dict):
            return _json(422, {"detail": [_problem("input", "Invalid JSON", "json_invalid")]})
        problems = _input_problems(model_id, body)
        if problems:
            return _json(422, {"detail": problems})
        return queue.enqueue(request, model_id, body, plan.take_job_failure())

    async def status(request: web.Request) -> web.Response:
        job = queue.find(request)
        if job is None:
            return _json(404, {"detail": "Request not found"})
        job.polls += 1
        state = job.state(plan.polls_per_state)
        job_id = request.match_info["request_id"]
        answer: dict[str, Any] = {
            "status": state,
            "request_id": job_id,
            "response_url": queue.urls(request, job_id, job.app_path)["response_url"],
            "logs": [] if request.query.get("logs") == "1" else None,
        }
        if state == "IN_QUEUE":
            answer["queue_position"] = 0
        if state == "COMPLETED":
            answer["metrics"] = {"inference_time": 0.01}
            return _json(200, answer)
        return _json(202, answer)

    async def result(request: web.Request) -> web.Response:
        job = queue.finished_job(request)
        if isinstance(job, web.Response):
            return job
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

    async def file(request: web.Request) -> web.Response:
        if plan.file_status is not None:
            return web.Response(status=plan.file_status, text="NoSuchKey")
        return web.Response(body=WAV, content_type="audio/wav")

    return queue.app(submit=submit, status=status, result=result, file=file)
