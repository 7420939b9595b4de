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
from typing import Any

from aiohttp import web

from tests.fakes.fal_queue import Job, JobFailure, Queue, QueuePlan, json_or_none
from tests.fakes.fal_queue import json_response as _json
from tests.fakes.faults import Fault
from tests.fakes.images import image_bytes as drawn_image

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


class FalImagesPlan(QueuePlan):
    """``QueuePlan`` plus the image jobs' controls and what the fake saw."""

    def restore_switches(self) -> None:
        super().restore_switches()
        self.inline_images = False
        self.fail_next: tuple[int, dict[str, Any]] | None = None  # the next job's result error
        self.submitted: list[dict[str, Any]] = []  # {"model", "input"} per submit
        self.status_polls: list[str] = []


def job_size(job: Job) -> tuple[int, int]:
    asked = job.input.get("image_size", "landscape_4_3")
    if isinstance(asked, dict):
        return int(asked["width"]), int(asked["height"])
    return PRESETS[asked]


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
    small = (max(1, size[0] // 16), max(1, size[1] // 16))
    return drawn_image(PIL_FORMATS[output_format], small, (30, 160, 90))


def make_app(plan: FalImagesPlan, api_key: str | None = None) -> web.Application:
    queue = Queue(plan, api_key, _fault_response)

    async def submit(request: web.Request) -> web.Response:
        model_id = request.match_info["model_id"]
        if model_id not in MODELS:
            return _json(404, {"detail": f"Application '{model_id}' not found"})
        body = json_or_none(await request.read())
        problems = input_problems(model_id, body) if isinstance(body, dict) else ["not JSON"]
        if problems:
            return _json(422, {"detail": problems})
        plan.submitted.append({"model": model_id, "input": body})
        failure = None if plan.fail_next is None else JobFailure(*plan.fail_next)
        plan.fail_next = None
        return queue.enqueue(request, model_id, body, failure)

    async def status(request: web.Request) -> web.Response:
        job = queue.find(request)
        if job is None:
            return _json(404, {"detail": "Request not found"})
        job.polls += 1
        plan.status_polls.append(request.match_info["request_id"])
        state = job.state(plan.polls_per_state)
        answer = {"status": state, "request_id": request.match_info["request_id"]}
        return _json(200 if state == "COMPLETED" else 202, answer)

    async def result(request: web.Request) -> web.Response:
        job = queue.finished_job(request)
        if isinstance(job, web.Response):
            return job
        output_format = job.input.get("output_format", "jpeg")
        width, height = job_size(job)
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

    async def file(request: web.Request) -> web.Response:
        stem, _, extension = request.match_info["name"].rpartition(".")
        job = queue.jobs.get(stem.rsplit("-", 1)[0])
        if job is None or extension not in PIL_FORMATS:
            return web.Response(status=404, text="NoSuchKey")
        return web.Response(
            body=image_bytes(job_size(job), extension), content_type=f"image/{extension}"
        )

    return queue.app(submit=submit, status=status, result=result, file=file)
