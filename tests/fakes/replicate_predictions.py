"""The prediction life cycle both fake Replicate APIs share (music and images).

Replicate documents one predictions API for every model: problem+json errors, a prediction
record ``{id, model, version, input, logs, output, error, status, data_removed, created_at,
started_at, completed_at, urls: {get, cancel, web}}``, ``GET /v1/predictions/{id}`` and
``POST /v1/predictions/{id}/cancel``. What differs per model (inputs, outputs, progress logs)
stays in each fake; this module owns the record, its polls and cancels, and the auth and
fault gate every call passes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.faults import Fault, FaultPlan, play_shared_fault

Gate = Callable[..., Awaitable[web.Response | None]]
FINISHED = ("succeeded", "failed", "canceled")


class PredictionPlan(FaultPlan):
    """Faults (``push``) plus the switches of a prediction's life and what the fake saw."""

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


def problem(status: int, title: str, detail: str, **extra: Any) -> web.Response:
    body = {"title": title, "detail": detail, "status": status, **extra}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def not_found() -> web.Response:
    return problem(404, "Not found", "The requested resource could not be found.")


def invalid_input(invalid: list[dict[str, str]]) -> web.Response:
    """Replicate's 422 for an input that breaks the model's schema."""
    detail = "".join(f"- {f['field']}: {f['description']}\n" for f in invalid)
    return problem(422, "Input validation failed", detail, invalid_fields=invalid)


def now(offset: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset)).isoformat().replace("+00:00", "Z")


def gate(
    plan: FaultPlan, api_key: str | None, fault_response: Callable[[Fault], web.Response]
) -> Gate:
    """Records a request, then applies auth and the next fault; a response short-circuits."""

    async def enter(request: web.Request, body: Any, *, auth: bool = True) -> web.Response | None:
        plan.record_request(request, body)
        fault = plan.take()
        if auth and api_key and request.headers.get("authorization") != f"Bearer {api_key}":
            return problem(401, "Unauthenticated", "You did not pass a valid authentication token")
        return await play_shared_fault(
            request, plan, fault, fault_response, malformed=b'{"id": "x", "status": '
        )

    return enter


def new_prediction(
    request: web.Request,
    prediction_id: str,
    *,
    model: str,
    version: str,
    model_input: Any,
    fail_with: str | None,
    origin: str,
) -> dict[str, Any]:
    """A just-created prediction; keys starting with ``_`` are the fake's own, never shown."""
    api = f"{request.scheme}://{request.host}/v1/predictions/{prediction_id}"
    return {
        "id": prediction_id,
        "model": model,
        "version": version,
        "input": model_input,
        "logs": "",
        "output": None,
        "data_removed": False,
        "error": None,
        "status": "starting",
        "created_at": now(),
        "started_at": None,
        "completed_at": None,
        "urls": {
            "get": api,
            "cancel": f"{api}/cancel",
            "web": f"https://replicate.com/p/{prediction_id}",
        },
        "_polls": 0,
        "_fail_with": fail_with,
        "_origin": origin,
    }


def public(prediction: dict[str, Any], status: int = 200) -> web.Response:
    shown = {k: v for k, v in prediction.items() if not k.startswith("_")}
    return web.json_response(shown, status=status)


def poll_stage(prediction: dict[str, Any], plan: PredictionPlan) -> str | None:
    """Counts one poll: ``None`` if the prediction had already finished, else where it stands
    now (``starting``, ``processing``, or ``done``: time to finish it)."""
    if prediction["status"] in FINISHED:
        return None
    prediction["_polls"] += 1
    polls = prediction["_polls"]
    if polls <= plan.starting_polls:
        return "starting"
    if polls <= plan.starting_polls + plan.processing_polls:
        return "processing"
    return "done"


def fail_if_asked(prediction: dict[str, Any]) -> bool:
    """Stamps a finished prediction's times; ends it failed (True) if it was set to fail."""
    prediction.update(started_at=prediction["started_at"] or now(), completed_at=now())
    if prediction["_fail_with"]:
        prediction.update(status="failed", error=prediction["_fail_with"])
        return True
    return False


def add_prediction_routes(
    app: web.Application,
    predictions: dict[str, dict[str, Any]],
    plan: PredictionPlan,
    enter: Gate,
    advance: Callable[[dict[str, Any]], None],
) -> None:
    """``GET /v1/predictions/{id}`` (one poll of progress) and its ``/cancel``."""

    async def find(request: web.Request) -> dict[str, Any] | web.Response:
        early = await enter(request, None)
        if early is not None:
            return early
        return predictions.get(request.match_info["id"]) or not_found()

    async def get_prediction(request: web.Request) -> web.Response:
        prediction = await find(request)
        if isinstance(prediction, web.Response):
            return prediction
        plan.polls.append(prediction["id"])
        advance(prediction)
        return public(prediction)

    async def cancel_prediction(request: web.Request) -> web.Response:
        prediction = await find(request)
        if isinstance(prediction, web.Response):
            return prediction
        plan.cancels.append(prediction["id"])
        if prediction["status"] in ("starting", "processing"):
            prediction.update(status="canceled", completed_at=now())
        return public(prediction)

    app.router.add_get("/v1/predictions/{id}", get_prediction)
    app.router.add_post("/v1/predictions/{id}/cancel", cancel_prediction)
