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

import io
import itertools
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from PIL import Image

from tests.fakes.faults import Fault, FaultPlan, play_shared_fault

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


class ReplicateImagesPlan(FaultPlan):
    """Faults (``push``) plus the prediction switches and what the fake saw."""

    def __init__(self) -> None:
        super().__init__()
        self.restore_switches()

    def reset(self) -> None:
        super().reset()
        self.restore_switches()

    def restore_switches(self) -> None:
        self.starting_polls = 1
        self.processing_polls = 1
        self.fail_with: str | None = None  # predictions created meanwhile end failed with this
        self.cancels: list[str] = []  # prediction ids whose cancel reached the fake
        self.polls: list[str] = []  # prediction ids, one per GET
        self.created: list[dict[str, Any]] = []  # {"model", "input", "prefer"} per create


def problem(status: int, title: str, detail: str, **extra: Any) -> web.Response:
    body = {"title": title, "detail": detail, "status": status, **extra}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


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
    buffer = io.BytesIO()
    Image.new("RGB", size, (40 * index % 256, 120, 200)).save(buffer, PIL_FORMATS[output_format])
    return buffer.getvalue()


def make_app(plan: ReplicateImagesPlan, api_key: str | None = None) -> web.Application:
    predictions: dict[str, dict[str, Any]] = {}

    async def enter(request: web.Request, body: Any, *, auth: bool = True) -> web.Response | None:
        plan.record_request(request, body)
        fault = plan.take()
        if auth and api_key and request.headers.get("authorization") != f"Bearer {api_key}":
            return problem(401, "Unauthenticated", "You did not pass a valid authentication token")
        return await play_shared_fault(
            request, plan, fault, _fault_response, malformed=b'{"id": "x", "status": '
        )

    def public(prediction: dict[str, Any], status: int = 200) -> web.Response:
        shown = {k: v for k, v in prediction.items() if not k.startswith("_")}
        return web.json_response(shown, status=status)

    async def create(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read() or b"{}")
        early = await enter(request, body)
        if early is not None:
            return early
        model = f"{request.match_info['owner']}/{request.match_info['name']}"
        if model not in MODELS:
            return problem(404, "Not found", "The requested resource could not be found.")
        invalid = invalid_fields(model, body.get("input"))
        if invalid:
            detail = "".join(f"- {f['field']}: {f['description']}\n" for f in invalid)
            return problem(422, "Input validation failed", detail, invalid_fields=invalid)
        prefer = request.headers.get("prefer")
        plan.created.append({"model": model, "input": body["input"], "prefer": prefer})
        prediction_id = f"img{next(_ids):06d}" + "r" * 16
        api = f"{request.scheme}://{request.host}/v1/predictions/{prediction_id}"
        prediction: dict[str, Any] = {
            "id": prediction_id,
            "model": model,
            "version": "hidden",
            "input": body["input"],
            "logs": "",
            "output": None,
            "data_removed": False,
            "error": None,
            "status": "starting",
            "created_at": _now(),
            "started_at": None,
            "completed_at": None,
            "urls": {
                "get": api,
                "cancel": f"{api}/cancel",
                "web": f"https://replicate.com/p/{prediction_id}",
            },
            "_polls": 0,
            "_fail_with": plan.fail_with,
            # Outputs live on another host, as on replicate.delivery: "localhost" by name.
            "_origin": f"{request.scheme}://localhost:{request.url.port}",
        }
        predictions[prediction_id] = prediction
        if prefer is not None and prefer.startswith("wait"):
            _finish(prediction)
        return public(prediction, status=201)

    async def get_prediction(request: web.Request) -> web.Response:
        early = await enter(request, None)
        if early is not None:
            return early
        prediction = predictions.get(request.match_info["id"])
        if prediction is None:
            return problem(404, "Not found", "The requested resource could not be found.")
        plan.polls.append(prediction["id"])
        _advance(prediction, plan)
        return public(prediction)

    async def cancel_prediction(request: web.Request) -> web.Response:
        early = await enter(request, None)
        if early is not None:
            return early
        prediction = predictions.get(request.match_info["id"])
        if prediction is None:
            return problem(404, "Not found", "The requested resource could not be found.")
        plan.cancels.append(prediction["id"])
        if prediction["status"] in ("starting", "processing"):
            prediction.update(status="canceled", completed_at=_now())
        return public(prediction)

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

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/models/{owner}/{name}/predictions", create)
    app.router.add_get("/v1/predictions/{id}", get_prediction)
    app.router.add_post("/v1/predictions/{id}/cancel", cancel_prediction)
    app.router.add_get("/delivery/{id}/out-{index}.{ext}", delivery)
    return app


def _fault_response(fault: Fault) -> web.Response:
    if fault.status == 429:
        response = problem(429, "Request was throttled", "Expected available in 1 second.")
    else:
        response = problem(fault.status, "Error", fault.message)
    response.headers.update(fault.headers)
    return response


def _advance(prediction: dict[str, Any], plan: ReplicateImagesPlan) -> None:
    """One poll's worth of progress, unless the prediction already finished."""
    if prediction["status"] in ("succeeded", "failed", "canceled"):
        return
    prediction["_polls"] += 1
    polls = prediction["_polls"]
    if polls <= plan.starting_polls:
        return
    if polls <= plan.starting_polls + plan.processing_polls:
        prediction.update(status="processing", started_at=prediction["started_at"] or _now())
        return
    _finish(prediction)


def _finish(prediction: dict[str, Any]) -> None:
    prediction.update(started_at=prediction["started_at"] or _now(), completed_at=_now())
    if prediction["_fail_with"]:
        prediction.update(status="failed", error=prediction["_fail_with"])
        return
    model_input = prediction["input"]
    extension = model_input.get("output_format", "webp")
    count = model_input.get("num_outputs", 1) if "input_image" not in model_input else 1
    base = f"{prediction['_origin']}/delivery/{prediction['id']}"
    output = [f"{base}/out-{index}.{extension}" for index in range(count)]
    prediction.update(status="succeeded", output=output, metrics={"predict_time": 0.01})
