"""A fake Replicate HTTP API (predictions, files, output delivery) with switchable faults.

The wire format it speaks, as Replicate documents it (replicate.com/docs, HTTP API reference):

* ``Authorization: Bearer <token>``; otherwise 401 ``{"title": "Unauthenticated", ...}``.
* ``POST /v1/models/{owner}/{name}/predictions`` ``{"input": {...}}`` (official models) or
  ``POST /v1/predictions`` ``{"version": "<id>" | "owner/name:<id>", "input": {...}}``; both
  answer 201 with a prediction ``{id, model, version, input, logs, output, error, status,
  data_removed, created_at, started_at, completed_at, urls: {get, cancel, web}, metrics}``.
* ``GET /v1/predictions/{id}``; ``POST /v1/predictions/{id}/cancel`` answers the prediction.
* ``status``: starting -> processing -> succeeded | failed | canceled. MusicGen's ``output`` is a
  URI string (a delivery URL that stops working after an hour).
* ``POST /v1/files`` multipart, file part ``content`` -> 201 ``{id, name, content_type, size,
  etag, checksums, metadata, created_at, expires_at, urls: {get}}``.
* Errors are problem+json ``{"title", "detail", "status"}``; 422 when the input fails the
  model's schema (``invalid_fields`` lists them); 429 ``{"detail": "Request was throttled..."}``.
* MusicGen input: prompt, model_version (stereo-melody-large, stereo-large, melody-large, large),
  input_audio, duration (integer, max 30), continuation, continuation_start/end,
  normalization_strategy (loudness, clip, peak, rms), output_format (wav, mp3), seed, top_k,
  top_p, temperature, classifier_free_guidance.

Predictions advance one step per poll: ``plan.starting_polls`` polls answer ``starting``, the
next ``plan.processing_polls`` answer ``processing``, then the prediction is finished.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import BodyPartReader, web

from tests.fakes.audio import tone_wav
from tests.fakes.faults import Fault
from tests.fakes.replicate_predictions import (
    PredictionPlan,
    add_prediction_routes,
    fail_if_asked,
    gate,
    invalid_input,
    new_prediction,
    not_found,
    now,
    poll_stage,
    problem,
    public,
)

MODEL = "meta/musicgen"
VERSION = "7be0f12c54a8d033a0fbd14418c9af98962da9a86f5ff7811f9b3423a1f0b7d7"
MODEL_VERSIONS = frozenset({"stereo-melody-large", "stereo-large", "melody-large", "large"})
NORMALIZATION = frozenset({"loudness", "clip", "peak", "rms"})
MAX_DURATION = 30
_ids = itertools.count(1)


class ReplicatePlan(PredictionPlan):
    """Faults (``push``) plus Replicate-specific switches and what the fake saw."""

    def restore_switches(self) -> None:
        super().restore_switches()
        self.expired_status: int | None = None  # output downloads answer this (404, 410)
        self.output_as_list = False  # ``output`` as ``[url]`` instead of ``url``
        self.output_origin: str | None = None  # host of output URLs; default: the fake's own
        self.uploads: list[dict[str, Any]] = []  # files created with POST /v1/files


def wav_bytes(seconds: float = 0.05, rate: int = 8000) -> bytes:
    """A short, valid mono 16-bit WAV (a 440 Hz tone)."""
    return tone_wav(seconds, rate)


def mp3_bytes(frames: int = 4) -> bytes:
    """Silent MPEG-1 Layer III frames (128 kbit/s, 44.1 kHz, mono): 417 bytes each."""
    return (b"\xff\xfb\x90\xc4" + bytes(413)) * frames


def _one_of(allowed: frozenset[str]) -> tuple[Callable[[Any], bool], str]:
    return (lambda value: value is None or value in allowed), "Must be one of: " + ", ".join(
        sorted(allowed)
    )


# MusicGen's input schema, as far as the fake checks it: (field, check, complaint).
_SCHEMA: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("prompt", lambda v: v is None or isinstance(v, str), "Must be a string"),
    (
        "duration",
        lambda v: v is None or (isinstance(v, int) and 1 <= v <= MAX_DURATION),
        f"Must be an integer between 1 and {MAX_DURATION}",
    ),
    ("model_version", *_one_of(MODEL_VERSIONS)),
    ("output_format", *_one_of(frozenset({"wav", "mp3"}))),
    ("normalization_strategy", *_one_of(NORMALIZATION)),
    ("input_audio", lambda v: v is None or str(v).startswith(("data:", "http")), "Must be a URI"),
)


def _invalid_fields(model_input: Any) -> list[dict[str, str]]:
    """The fields of MusicGen's input that break its schema."""
    if not isinstance(model_input, dict):
        return [{"type": "type", "field": "input", "description": "Must be an object"}]
    return [
        {"type": "invalid", "field": f"input.{name}", "description": complaint}
        for name, check, complaint in _SCHEMA
        if not check(model_input.get(name))
    ]


def make_app(plan: ReplicatePlan, api_key: str | None = None) -> web.Application:
    predictions: dict[str, dict[str, Any]] = {}

    enter = gate(plan, api_key, _fault_response)

    def origin(request: web.Request) -> str:
        return plan.output_origin or f"{request.scheme}://{request.host}"

    async def create(request: web.Request, version: str | None) -> web.Response:
        body = orjson.loads(await request.read() or b"{}")
        early = await enter(request, body)
        if early is not None:
            return early
        if version is None:
            version = str(body.get("version", "")).rsplit(":", 1)[-1]
            if version != VERSION:
                return problem(
                    422,
                    "Invalid version or not permitted",
                    "The specified version does not exist (or perhaps you don't have permission"
                    " to use it?)",
                )
        invalid = _invalid_fields(body.get("input"))
        if invalid:
            return invalid_input(invalid)
        prediction_id = f"fk{next(_ids):06d}" + "q" * 18
        predictions[prediction_id] = new_prediction(
            request,
            prediction_id,
            model=MODEL,
            version=version,
            model_input=body["input"],
            fail_with=plan.fail_with,
            origin=origin(request),
        )
        return public(predictions[prediction_id], status=201)

    async def create_for_model(request: web.Request) -> web.Response:
        name = f"{request.match_info['owner']}/{request.match_info['name']}"
        if name != MODEL:
            return await enter(request, None) or not_found()
        return await create(request, VERSION)

    async def create_for_version(request: web.Request) -> web.Response:
        return await create(request, None)

    async def create_file(request: web.Request) -> web.Response:
        summary: dict[str, Any] = {"parts": []}
        content: bytes | None = None
        part_info: dict[str, Any] = {}
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue  # nested multipart: not something Replicate's upload takes
            data = await part.read()
            info = {
                "name": part.name,
                "filename": part.filename,
                "content_type": part.headers.get("content-type"),
                "size": len(data),
            }
            summary["parts"].append(info)
            if part.name == "content":
                content, part_info = bytes(data), info
        early = await enter(request, summary)
        if early is not None:
            return early
        if content is None:
            return problem(400, "Bad request", "Missing file part 'content'")
        file_id = f"file{next(_ids):06d}"
        plan.uploads.append({**part_info, "id": file_id})
        get_url = f"{request.scheme}://{request.host}/v1/files/{file_id}"
        return web.json_response(
            {
                "id": file_id,
                "name": part_info["filename"],
                "content_type": part_info["content_type"] or "application/octet-stream",
                "size": len(content),
                "etag": hashlib.md5(content, usedforsecurity=False).hexdigest(),
                "checksums": {"sha256": hashlib.sha256(content).hexdigest()},
                "metadata": {},
                "created_at": now(),
                "expires_at": now(86400),
                "urls": {"get": get_url},
            },
            status=201,
        )

    async def delivery(request: web.Request) -> web.Response:
        # Delivery URLs are signed and public: no token needed (its presence is recorded).
        early = await enter(request, None, auth=False)
        if early is not None:
            return early
        if plan.expired_status is not None or request.match_info["id"] not in predictions:
            return web.Response(status=plan.expired_status or 404, text="Not Found")
        if request.match_info["ext"] == "mp3":
            return web.Response(body=mp3_bytes(), content_type="audio/mpeg")
        return web.Response(body=wav_bytes(), content_type="audio/wav")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/predictions", create_for_version)
    app.router.add_post("/v1/models/{owner}/{name}/predictions", create_for_model)
    add_prediction_routes(app, predictions, plan, enter, lambda p: _advance(p, plan))
    app.router.add_post("/v1/files", create_file)
    app.router.add_get("/files/{id}/output.{ext}", delivery)
    return app


def _fault_response(fault: Fault) -> web.Response:
    if fault.status == 429:
        detail = "Request was throttled. Expected available in 1 second."
        response = problem(429, "Request was throttled", detail)
    elif fault.status == 422:
        response = problem(422, "Input validation failed", fault.message)
    else:
        response = problem(fault.status, "Error", fault.message)
    response.headers.update(fault.headers)
    return response


def _advance(prediction: dict[str, Any], plan: ReplicatePlan) -> None:
    """One poll's worth of progress, unless the prediction already finished."""
    stage = poll_stage(prediction, plan)
    if stage == "processing":
        step = prediction["_polls"] - plan.starting_polls
        percent = int(100 * step / (plan.processing_polls + 1))
        prediction.update(
            status="processing",
            started_at=prediction["started_at"] or now(),
            logs=f"Using seed: 42\n{percent:3d}%|#####     | {percent}/100 [00:01<00:01]\n",
        )
        return
    if stage != "done":
        return
    prediction["metrics"] = {"predict_time": 0.01, "total_time": 0.02}
    if fail_if_asked(prediction):
        return
    extension = prediction["input"].get("output_format", "wav")
    url = f"{prediction['_origin']}/files/{prediction['id']}/output.{extension}"
    prediction.update(
        status="succeeded",
        output=[url] if plan.output_as_list else url,
        logs=prediction["logs"] + "100%|##########| 100/100 [00:02<00:00]\n",
    )
