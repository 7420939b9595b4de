"""A fake fal.ai queue (``queue.fal.run``) serving FLUX image models, with switchable faults.

The wire format it speaks, as fal documents it (Queue API; the model pages of
``fal-ai/flux/schnell``, ``fal-ai/flux/dev`` and ``fal-ai/flux/dev/image-to-image``):

- Auth: ``Authorization: Key <FAL_KEY>``; anything else gets 401 ``{"detail": ...}``.
- Submit: ``POST /{model_id}`` with the model's input -> 200 ``{request_id, response_url,
  status_url, cancel_url, queue_position}``; the URLs keep only the owner/app of the model id
  (``/fal-ai/flux/requests/{id}...``), so a client must use them as given.
- Status: ``GET status_url`` -> 202 ``IN_QUEUE`` / ``IN_PROGRESS``, then 200 ``COMPLETED``
  (one state every ``plan.polls_per_state`` polls).
- Result: ``GET response_url`` -> ``{"images": [{url, width, height, content_type}], "timings",
  "seed", "has_nsfw_concepts", "prompt"}``, or the job's error with its own status: model
  errors ``{"detail": [{loc, msg, type, url}]}`` (422), request errors ``{"detail": str,
  "error_type": str}``; 499 ``client_cancelled`` after a cancel.
- Cancel: ``PUT cancel_url`` -> 202 ``CANCELLATION_REQUESTED``, 400 ``ALREADY_COMPLETED``.
- Inputs checked: ``prompt`` (required), ``image_size`` (a preset name or ``{width, height}``),
  ``num_images`` (1-4), ``output_format`` (``jpeg``, ``png``), ``seed`` (integer);
  image-to-image needs ``image_url`` (a URL or data URI) and takes ``strength`` (0-1).

Images are real (Pillow), in the asked format and at a small size with the asked shape (a
sixteenth of each side); ``plan.inline_images`` answers them as data URIs instead of file URLs.
"""

from __future__ import annotations

import base64
import io
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from PIL import Image

from tests.fakes.faults import Fault, FaultPlan, play_shared_fault

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PRESETS = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}
MODELS = {"fal-ai/flux/schnell": False, "fal-ai/flux/dev": False}  # model -> takes an image
MODELS["fal-ai/flux/dev/image-to-image"] = True
PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG"}


class FalImagesPlan(FaultPlan):
    """``FaultPlan`` plus the queue's job controls and what the fake saw."""

    def __init__(self) -> None:
        super().__init__()
        self._fal_lock = threading.Lock()
        self.restore_switches()

    def restore_switches(self) -> None:
        self.polls_per_state = 1
        self.inline_images = False
        self.fail_next: tuple[int, dict[str, Any]] | None = None  # the next job's result error
        self.submitted: list[dict[str, Any]] = []  # {"model", "input"} per submit
        self.status_polls: list[str] = []
        self.cancelled: list[str] = []

    def reset(self) -> None:
        super().reset()
        with self._fal_lock:
            self.restore_switches()


@dataclass
class Job:
    model_id: str
    app_path: str
    input: dict[str, Any]
    failure: tuple[int, dict[str, Any]] | None
    polls: int = 0
    canceled: bool = False

    def state(self, polls_per_state: int) -> str:
        if self.canceled or self.polls > 2 * polls_per_state:
            return "COMPLETED"
        return "IN_QUEUE" if self.polls <= polls_per_state else "IN_PROGRESS"

    def size(self) -> tuple[int, int]:
        asked = self.input.get("image_size", "landscape_4_3")
        if isinstance(asked, dict):
            return int(asked["width"]), int(asked["height"])
        return PRESETS[asked]


def _json(status: int, body: Any) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def _problem(name: str, msg: str, kind: str) -> dict[str, Any]:
    return {"loc": ["body", name], "msg": msg, "type": kind, "url": "https://docs.fal.ai/errors"}


def _fault_response(fault: Fault) -> web.Response:
    response = _json(fault.status, {"detail": fault.message})
    response.headers.update(fault.headers)
    return response


def _is_size(value: Any) -> bool:
    if isinstance(value, str):
        return value in PRESETS
    return (
        isinstance(value, dict)
        and all(isinstance(value.get(side), int) for side in ("width", "height"))
        and set(value) == {"width", "height"}
    )


def input_problems(model_id: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    checks = [
        ("prompt", isinstance(body.get("prompt"), str) and bool(body.get("prompt"))),
        ("image_size", _is_size(body.get("image_size", "landscape_4_3"))),
        ("num_images", body.get("num_images", 1) in (1, 2, 3, 4)),
        ("output_format", body.get("output_format", "jpeg") in PIL_FORMATS),
        ("seed", isinstance(body.get("seed", 0), int)),
    ]
    if MODELS[model_id]:
        image_url = body.get("image_url")
        uri = isinstance(image_url, str) and image_url.startswith(("data:", "http"))
        strength = body.get("strength", 0.95)
        checks += [("image_url", uri), ("strength", isinstance(strength, float | int))]
    return [_problem(name, "Input is invalid", "value_error") for name, ok in checks if not ok]


def image_bytes(size: tuple[int, int], output_format: str) -> bytes:
    buffer = io.BytesIO()
    small = (max(1, size[0] // 16), max(1, size[1] // 16))
    Image.new("RGB", small, (30, 160, 90)).save(buffer, PIL_FORMATS[output_format])
    return buffer.getvalue()


def make_app(plan: FalImagesPlan, api_key: str | None = None) -> web.Application:
    jobs: dict[str, Job] = {}
    expected_auth = None if api_key is None else f"Key {api_key}"

    @web.middleware
    async def faults(request: web.Request, handler: Handler) -> web.StreamResponse:
        body = None
        if request.method == "POST":
            try:
                body = orjson.loads(await request.read())
            except orjson.JSONDecodeError:
                body = None
        plan.record_request(request, body)
        fault = plan.take()
        queue_call = not request.path.startswith("/files/")  # files are public CDN URLs
        if queue_call and expected_auth and request.headers.get("authorization") != expected_auth:
            fault = Fault(name="status", status=401, message="No user found for Key")
        early = await play_shared_fault(request, plan, fault, _fault_response, b'{"request_id": ')
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
        model_id = request.match_info["model_id"]
        if model_id not in MODELS:
            return _json(404, {"detail": f"Application '{model_id}' not found"})
        body = orjson.loads(await request.read())
        problems = input_problems(model_id, body) if isinstance(body, dict) else ["not JSON"]
        if problems:
            return _json(422, {"detail": problems})
        plan.submitted.append({"model": model_id, "input": body})
        job_id = str(uuid.uuid4())
        app_path = "/".join(model_id.split("/")[:2])
        jobs[job_id] = Job(model_id, app_path, body, plan.fail_next)
        plan.fail_next = None
        return _json(
            200, {"request_id": job_id, **urls(request, job_id, app_path), "queue_position": 0}
        )

    async def status(request: web.Request) -> web.Response:
        job = find(request)
        if job is None:
            return _json(404, {"detail": "Request not found"})
        job.polls += 1
        plan.status_polls.append(request.match_info["request_id"])
        state = job.state(plan.polls_per_state)
        answer = {"status": state, "request_id": request.match_info["request_id"]}
        return _json(200 if state == "COMPLETED" else 202, answer)

    async def result(request: web.Request) -> web.Response:
        job = find(request)
        if job is None:
            return _json(404, {"detail": "Request not found"})
        if job.state(plan.polls_per_state) != "COMPLETED":
            return _json(400, {"detail": "Request is still in progress"})
        if job.canceled:
            return _json(499, {"detail": "Request was cancelled", "error_type": "client_cancelled"})
        if job.failure is not None:
            return _json(*job.failure)
        output_format = job.input.get("output_format", "jpeg")
        width, height = job.size()
        images = []
        for index in range(job.input.get("num_images", 1)):
            name = f"{request.match_info['request_id']}-{index}.{output_format}"
            url = f"{request.url.origin()}/files/{name}"
            if plan.inline_images:
                data = base64.b64encode(image_bytes((width, height), output_format)).decode()
                url = f"data:image/{output_format};base64,{data}"
            images.append(
                {
                    "url": url,
                    "width": width,
                    "height": height,
                    "content_type": f"image/{output_format}",
                }
            )
        seed = job.input.get("seed", 1234)
        return _json(
            200,
            {
                "images": images,
                "timings": {"inference": 0.01},
                "seed": seed,
                "has_nsfw_concepts": [False] * len(images),
                "prompt": job.input["prompt"],
            },
        )

    async def cancel(request: web.Request) -> web.Response:
        job = find(request)
        if job is None:
            return _json(404, {"status": "NOT_FOUND"})
        if job.state(plan.polls_per_state) == "COMPLETED":
            return _json(400, {"status": "ALREADY_COMPLETED"})
        job.canceled = True
        plan.cancelled.append(request.match_info["request_id"])
        return _json(202, {"status": "CANCELLATION_REQUESTED"})

    async def file(request: web.Request) -> web.Response:
        stem, _, extension = request.match_info["name"].rpartition(".")
        job = jobs.get(stem.rsplit("-", 1)[0])
        if job is None or extension not in PIL_FORMATS:
            return web.Response(status=404, text="NoSuchKey")
        return web.Response(
            body=image_bytes(job.size(), extension), content_type=f"image/{extension}"
        )

    app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[faults])
    app.router.add_get("/files/{name}", file)
    app.router.add_get("/{owner}/{app}/requests/{request_id}/status", status)
    app.router.add_get("/{owner}/{app}/requests/{request_id}", result)
    app.router.add_put("/{owner}/{app}/requests/{request_id}/cancel", cancel)
    app.router.add_post("/{model_id:.+}", submit)
    return app
