"""A fake Stability AI Stable Audio 2 server speaking its synchronous multipart wire format.

The documented wire format it follows (platform.stability.ai API reference, Stable Audio 2):

- ``POST /v2beta/audio/stable-audio-2/text-to-audio`` and ``.../audio-to-audio``, both
  ``multipart/form-data`` (even without a file). Fields: ``prompt`` (required, at most 10,000
  characters), ``duration`` (number, 1-190 s, default 190), ``seed`` (0-4294967294), ``steps``,
  ``cfg_scale``, ``output_format`` (``mp3`` default, or ``wav``), ``model`` (``stable-audio-2``,
  ``stable-audio-2.5``). Audio-to-audio adds the file part ``audio`` (mp3 or wav, required) and
  ``strength`` (0-1, default 1).
- ``authorization: Bearer <key>``; ``accept: audio/*`` answers 200 with the raw bytes
  (``audio/mpeg`` or ``audio/wav``) and headers ``finish-reason`` (``SUCCESS`` or
  ``CONTENT_FILTERED``) and ``seed``; ``accept: application/json`` answers
  ``{"audio": <base64>, "finish_reason", "seed"}``.
- Errors are JSON ``{"id": ..., "name": ..., "errors": [...]}``: 400 bad_request, 401
  unauthorized, 403 content_moderation, 413 payload_too_large, 422 (e.g. invalid_language),
  429 rate_limit_exceeded, 500 internal_error.

Faults come from a ``FaultPlan`` (``status``, ``slow``, ``reset``, ``malformed`` = 200 JSON, not
audio) or the ``StabilityFaultPlan`` extras (``filtered``, ``empty``). Every request is recorded
with its text fields and, per file part, its name, content type, size and SHA-256.
"""

from __future__ import annotations

import base64
import io
import random
import uuid
import wave
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.faults import Fault, FaultPlan, play_shared_fault
from tests.fakes.multipart_form import read_form

API_PATH = "/v2beta/audio/stable-audio-2"
MODELS = ("stable-audio-2", "stable-audio-2.5")
MAX_DURATION = 190.0
MAX_PROMPT_CHARS = 10_000
MAX_SEED = 4_294_967_294
ERROR_NAMES = {
    400: "bad_request",
    401: "unauthorized",
    402: "payment_required",
    403: "content_moderation",
    413: "payload_too_large",
    422: "invalid_language",
    429: "rate_limit_exceeded",
    500: "internal_error",
}
ERROR_TEXTS = {
    401: "authorization: missing or invalid API key",
    403: "Your request was flagged by our content moderation system, as a result your request "
    "was denied and you were not charged.",
    413: "payload: the request body is larger than 50MB",
    422: "English is the only supported language for this service.",
    429: "You have exceeded the rate limit of 150 requests within a 10 second period.",
    500: "An unexpected server error has occurred, please try again later.",
}
EXTRA_FAULTS = (
    "filtered",  # 200 audio whose finish-reason says CONTENT_FILTERED
    "empty",  # 200 audio/* with an empty body
)


class StabilityFaultPlan(FaultPlan):
    """A ``FaultPlan`` that also takes the fake's own 200-but-wrong answers (``EXTRA_FAULTS``)."""

    def push(self, name: str, times: int = 1, **options: Any) -> None:
        if name not in EXTRA_FAULTS:
            super().push(name, times, **options)
            return
        with self._lock:
            for _ in range(times):
                self._queue.append(Fault(name=name, **options))


def wav_bytes(seconds: float, rate: int = 8000) -> bytes:
    """A small valid mono 16-bit WAV of silence (capped at a quarter second to stay tiny)."""
    frames = max(1, int(rate * min(seconds, 0.25)))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * frames)
    return buffer.getvalue()


def mp3_bytes(frames: int = 4) -> bytes:
    """Bytes that look like an MP3: an empty ID3v2.4 tag, then MPEG-1 Layer III frame headers."""
    tag = b"ID3\x04\x00\x00\x00\x00\x00\x00"
    # 0xFFFB: frame sync, MPEG-1, Layer III, no CRC; 0x90: 128 kbit/s at 44.1 kHz; 417-byte frames.
    frame = b"\xff\xfb\x90\x64" + b"\x00" * 413
    return tag + frame * frames


def error_response(status: int, message: str | None = None, **headers: str) -> web.Response:
    body = {
        "id": uuid.uuid4().hex,
        "name": ERROR_NAMES.get(status, "error"),
        "errors": [message or ERROR_TEXTS.get(status, "fake upstream failure")],
    }
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


def _check_fields(fields: dict[str, str], files: dict[str, dict[str, Any]], a2a: bool) -> str:
    """The first reason the real API would answer 400, or an empty string."""
    prompt = fields.get("prompt", "")
    if not prompt.strip():
        return "prompt: is required"
    if len(prompt) > MAX_PROMPT_CHARS:
        return "prompt: must be at most 10000 characters"
    if fields.get("output_format", "mp3") not in ("mp3", "wav"):
        return "output_format: must be one of mp3, wav"
    if "model" in fields and fields["model"] not in MODELS:
        return f"model: must be one of {', '.join(MODELS)}"
    try:
        duration = float(fields.get("duration", MAX_DURATION))
        seed = int(fields.get("seed", "0"))
        strength = float(fields.get("strength", "1"))
    except ValueError:
        return "duration, seed and strength must be numbers"
    if not 1 <= duration <= MAX_DURATION:
        return "duration: must be between 1 and 190"
    if not 0 <= seed <= MAX_SEED:
        return "seed: must be between 0 and 4294967294"
    if a2a:
        if "audio" not in files or files["audio"]["size"] == 0:
            return "audio: is required"
        if not 0 <= strength <= 1:
            return "strength: must be between 0 and 1"
    return ""


async def _read_form(request: web.Request) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    fields, parts = await read_form(request)
    return fields, {part.name: {"filename": part.filename, **part.summary()} for part in parts}


def fault_response(fault: Fault) -> web.Response:
    """A ``status`` fault: the default message stands for "Stability's own for the status"."""
    message = None if fault.message == Fault().message else fault.message
    return error_response(fault.status, message, **fault.headers)


async def admit(
    request: web.Request, plan: FaultPlan, api_key: str | None
) -> tuple[Fault, web.Response | None]:
    """The request's fault, and the answer that ends it early: a wrong key, or the fault."""
    fault = plan.take()
    if api_key is not None and request.headers.get("authorization") != f"Bearer {api_key}":
        return fault, error_response(401)
    return fault, await play_shared_fault(request, plan, fault, fault_response)


def make_app(plan: FaultPlan, api_key: str | None = None) -> web.Application:
    """The two Stable Audio 2 endpoints under ``API_PATH``; point ``base_url`` at the root."""

    async def generate(request: web.Request) -> web.StreamResponse:
        a2a = request.path.endswith("/audio-to-audio")
        if not request.content_type.startswith("multipart/form-data"):
            plan.record(request.path, _headers(request), {"fields": {}, "files": {}})
            return error_response(400, "content-type: must be multipart/form-data")
        fields, files = await _read_form(request)
        plan.record(request.path, _headers(request), {"fields": fields, "files": files})
        fault, early = await admit(request, plan, api_key)
        if early is not None:
            return early
        problem = _check_fields(fields, files, a2a)
        if problem:
            return error_response(400, problem)
        return _audio_answer(request, fields, fault)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post(API_PATH + "/text-to-audio", generate)
    app.router.add_post(API_PATH + "/audio-to-audio", generate)
    return app


def _audio_answer(request: web.Request, fields: dict[str, str], fault: Fault) -> web.Response:
    output_format = fields.get("output_format", "mp3")
    seed = int(fields.get("seed") or random.randint(1, MAX_SEED))
    if output_format == "wav":
        audio, content_type = wav_bytes(float(fields.get("duration", MAX_DURATION))), "audio/wav"
    else:
        audio, content_type = mp3_bytes(), "audio/mpeg"
    return generated_answer(request, fault, "audio", audio, content_type=content_type, seed=seed)


def generated_answer(
    request: web.Request, fault: Fault, key: str, data: bytes, *, content_type: str, seed: int
) -> web.Response:
    """A finished generation as Stability answers it: the raw bytes with ``finish-reason`` and
    ``seed`` headers, or JSON with ``data`` in base64 under ``key`` when the client accepts
    ``application/json`` (or the fault is ``malformed``: JSON where bytes were asked)."""
    finish = "CONTENT_FILTERED" if fault.name == "filtered" else "SUCCESS"
    wants_json = request.headers.get("accept", "").startswith("application/json")
    if fault.name == "malformed" or wants_json:
        payload = {key: base64.b64encode(data).decode(), "finish_reason": finish, "seed": seed}
        return web.Response(body=orjson.dumps(payload), content_type="application/json")
    if fault.name == "empty":
        data = b""
    headers = {
        "content-type": content_type,
        "finish-reason": finish,
        "seed": str(seed),
        **fault.headers,
    }
    return web.Response(body=data, headers=headers)


def _headers(request: web.Request) -> dict[str, str]:
    return {key.lower(): value for key, value in request.headers.items()}
