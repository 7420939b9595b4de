"""A fake Replicate predictions API serving FLUX image models, with switchable faults.

The wire format it speaks, as Replicate documents it (HTTP API reference; the model pages of
``black-forest-labs/flux-schnell``, ``flux-dev`` and ``flux-kontext-pro``):

* ``Authorization: Bearer <token>``; otherwise 401 problem+json ``{"title", "detail", "status"}``.
* ``POST /v1/models/{owner}/{name}/predictions`` ``{"input": {...}}`` -> 201 with a prediction
  ``{id, model, version, input, logs, output, error, status, data_removed, created_at,
  started_at, completed_at, urls: {get, cancel, stream, web}}``. With ``Prefer: wait=N`` the
  answer waits for the prediction to finish (here: it finishes at once) and is 201 as well.
* ``GET /v1/predictions/{id}``; ``POST /v1/predictions/{id}/cancel`` answers the prediction.
* ``status``: starting -> processing -> succeeded | failed | canceled; a FLUX ``output`` is a
  list of delivery URLs (``https://replicate.delivery/.../out-0.webp``), public, no token.
* Errors are problem+json; 422 ``Input validation failed`` with ``invalid_fields`` when the
  input breaks the model's schema.
* FLUX inputs checked: ``prompt`` (required string), ``aspect_ratio`` (the listed ratios, plus
  ``match_input_image`` for Kontext), ``num_outputs`` (1-4; Kontext has none), ``output_format``
  (``webp``, ``jpg``, ``png``; Kontext ``jpg``, ``png``), ``output_quality`` (0-100), ``seed``,
  ``prompt_strength`` (0-1), ``image`` (flux-dev) / ``input_image`` (Kontext, required) as a URI.

Predictions advance one step per poll (``plan.starting_polls``, then ``plan.processing_polls``);
the delivery URLs (on ``localhost``: another origin than the API's ``127.0.0.1``, as
``replicate.delivery`` is) are served by the fake itself with real images drawn by Pillow, in
the asked format, shaped like the asked ratio (small: 16 px per unit of the ratio).
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
from aiohttp import web

from tests.fakes import replicate_predictions as lifecycle
from tests.fakes.faults import Fault
from tests.fakes.images import image_bytes as drawn_image

RATIOS = frozenset(
    {"1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21"}
)
MODELS = {  # model -> (the input taking an image, the formats it makes, whether it takes n)
    "black-forest-labs/flux-schnell": (None, ("webp", "jpg", "png"), True),
    "black-forest-labs/flux-dev": ("image", ("webp", "jpg", "png"), True),
    "black-forest-labs/flux-kontext-pro": ("input_image", ("jpg", "png"), False),
}
PIL_FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}
_ids = itertools.count(1)


class ReplicateImagesPlan(lifecycle.PredictionPlan):
    """Faults (``push``) plus the prediction switches and what the fake saw."""

    def restore_switches(self) -> None:
        super().restore_switches()
        self.created: list[dict[str, Any]] = []  # {"model", "input", "prefer"} per create


def _is_uri(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("data:", "http://", "https://"))


def invalid_fields(model: str, model_input: Any) -> list[dict[str, str]]:
    """The fields of ``model_input`` that break the model's schema."""
    if not isinstance(model_input, dict):
        return [{"type": "type", "field": "input", "description": "Must be an object"}]
    image_field, formats, takes_n = MODELS[model]
    ratios = RATIOS | ({"match_input_image"} if image_field == "input_image" else set())
    checks: list[tuple[str, bool, str]] = [
        ("prompt", isinstance(model_input.get("prompt"), str), "Must be a string"),
        ("aspect_ratio", model_input.get("aspect_ratio", "1:1") in ratios, "Not a valid ratio"),
        ("output_format", model_input.get("output_format", "jpg") in formats, "Not a format"),
        ("seed", isinstance(model_input.get("seed", 0), int), "Must be an integer"),
    ]
    if takes_n:
        n = model_input.get("num_outputs", 1)
        checks.append(("num_outputs", isinstance(n, int) and 1 <= n <= 4, "Must be 1 to 4"))
    quality = model_input.get("output_quality", 80)
    checks.append(("output_quality", isinstance(quality, int) and 0 <= quality <= 100, "0-100"))
    strength = model_input.get("prompt_strength", 0.8)
    checks.append(
        ("prompt_strength", isinstance(strength, float | int) and 0 <= strength <= 1, "0-1")
    )
    if image_field == "input_image":
        checks.append(("input_image", _is_uri(model_input.get("input_image")), "Must be a URI"))
    elif image_field == "image" and "image" in model_input:
        checks.append(("image", _is_uri(model_input["image"]), "Must be a URI"))
    return [
        {"type": "invalid", "field": f"input.{name}", "description": complaint}
        for name, ok, complaint in checks
        if not ok
    ]


def image_bytes(ratio: str, output_format: str, index: int) -> bytes:
    """A real image in ``output_format`` shaped like ``ratio`` (16 px per unit)."""
    width, _, height = ratio.partition(":")
    size = (16 * int(width), 16 * int(height)) if height else (64, 64)
    return drawn_image(PIL_FORMATS[output_format], size, (40 * index % 256, 120, 200))


def make_app(plan: ReplicateImagesPlan, api_key: str | None = None) -> web.Application:
    predictions: dict[str, dict[str, Any]] = {}
    enter = lifecycle.gate(plan, api_key, _fault_response)

    async def create(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read() or b"{}")
        early = await enter(request, body)
        if early is not None:
            return early
        model = f"{request.match_info['owner']}/{request.match_info['name']}"
        if model not in MODELS:
            return lifecycle.not_found()
        invalid = invalid_fields(model, body.get("input"))
        if invalid:
            return lifecycle.invalid_input(invalid)
        prefer = request.headers.get("prefer")
        plan.created.append({"model": model, "input": body["input"], "prefer": prefer})
        prediction_id = f"img{next(_ids):06d}" + "r" * 16
        prediction = lifecycle.new_prediction(
            request,
            prediction_id,
            model=model,
            version="hidden",
            model_input=body["input"],
            fail_with=plan.fail_with,
            # Outputs live on another host, as on replicate.delivery: "localhost" by name.
            origin=f"{request.scheme}://localhost:{request.url.port}",
        )
        predictions[prediction_id] = prediction
        if prefer is not None and prefer.startswith("wait"):
            _finish(prediction)
        return lifecycle.public(prediction, status=201)

    async def delivery(request: web.Request) -> web.Response:
        # Delivery URLs are signed and public: no token needed (its presence is recorded).
        early = await enter(request, None, auth=False)
        if early is not None:
            return early
        prediction = predictions.get(request.match_info["id"])
        if prediction is None or prediction["status"] != "succeeded":
            return web.Response(status=404, text="Not Found")
        model_input = prediction["input"]
        output_format = request.match_info["ext"]
        ratio = model_input.get("aspect_ratio", "1:1")
        data = image_bytes(ratio, output_format, int(request.match_info["index"]))
        return web.Response(body=data, content_type=f"image/{output_format.replace('jpg', 'jpeg')}")

    def advance(prediction: dict[str, Any]) -> None:
        stage = lifecycle.poll_stage(prediction, plan)
        if stage == "processing":
            prediction.update(
                status="processing", started_at=prediction["started_at"] or lifecycle.now()
            )
        elif stage == "done":
            _finish(prediction)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/models/{owner}/{name}/predictions", create)
    lifecycle.add_prediction_routes(app, predictions, plan, enter, advance)
    app.router.add_get("/delivery/{id}/out-{index}.{ext}", delivery)
    return app


def _fault_response(fault: Fault) -> web.Response:
    if fault.status == 429:
        response = lifecycle.problem(
            429, "Request was throttled", "Expected available in 1 second."
        )
    else:
        response = lifecycle.problem(fault.status, "Error", fault.message)
    response.headers.update(fault.headers)
    return response


def _finish(prediction: dict[str, Any]) -> None:
    if lifecycle.fail_if_asked(prediction):
        return
    model_input = prediction["input"]
    extension = model_input.get("output_format", "webp")
    count = model_input.get("num_outputs", 1) if "input_image" not in model_input else 1
    base = f"{prediction['_origin']}/delivery/{prediction['id']}"
    output = [f"{base}/out-{index}.{extension}" for index in range(count)]
    prediction.update(status="succeeded", output=output, metrics={"predict_time": 0.01})
