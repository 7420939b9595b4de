"""A fake Stability AI Stable Image API (v2beta generate: Core, Ultra, SD3), with faults.

The documented wire format it follows (platform.stability.ai API reference, Stable Image):

- ``POST /v2beta/stable-image/generate/core``, ``.../ultra`` and ``.../sd3``, all
  ``multipart/form-data``. Fields: ``prompt`` (required, 1-10,000 characters),
  ``negative_prompt``, ``aspect_ratio`` (16:9 1:1 21:9 2:3 3:2 4:5 5:4 9:16 9:21, default 1:1),
  ``seed`` (0-4294967294, 0 or absent: random), ``style_preset``, ``output_format`` (``png``
  default, ``jpeg``, ``webp``; SD3: ``png`` or ``jpeg``). Ultra also takes the file part
  ``image`` with ``strength`` (0-1, required with an image). SD3 takes ``model``
  (``sd3.5-large`` default, ``sd3.5-large-turbo``, ``sd3.5-medium``, ``sd3.5-flash``) and
  ``mode``: ``image-to-image`` needs ``image`` and ``strength`` and takes no ``aspect_ratio``.
  Core takes no image.
- ``authorization: Bearer <key>``; ``accept: image/*`` (the default) answers 200 with the raw
  image and the headers ``finish-reason`` (``SUCCESS`` or ``CONTENT_FILTERED``) and ``seed``;
  ``accept: application/json`` answers ``{"image": <base64>, "finish_reason", "seed"}``.
- Errors are Stable Audio's (``stability_upstream.error_response``): ``{"id", "name",
  "errors": [...]}``.

Images are real, about a megapixel at the asked ratio (an edit: the input's size), coloured by
the prompt and seed. Faults come from ``StabilityFaultPlan``: ``status``, ``slow``, ``reset``,
``malformed`` (200 JSON, not an image), ``filtered`` (an image whose finish-reason is
CONTENT_FILTERED), ``empty``. Each request is recorded with its text fields and, per file part,
its content type, size and SHA-256.
"""

from __future__ import annotations

import hashlib
import io
import math
import random
from typing import Any

from aiohttp import web
from PIL import Image

from tests.fakes.faults import Fault
from tests.fakes.multipart_form import FormFile, read_form
from tests.fakes.stability_upstream import (
    StabilityFaultPlan,
    admit,
    error_response,
    generated_answer,
)

API_PATH = "/v2beta/stable-image/generate"
ASPECT_RATIOS = ("16:9", "1:1", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21")
SD3_MODELS = ("sd3.5-large", "sd3.5-large-turbo", "sd3.5-medium", "sd3.5-flash")
FORMATS = {
    "core": ("png", "jpeg", "webp"),
    "ultra": ("png", "jpeg", "webp"),
    "sd3": ("png", "jpeg"),
}
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
MAX_SEED = 4_294_967_294
PIXELS = 1024 * 1024


def size_for(ratio: str) -> tuple[int, int]:
    """About a megapixel at ``ratio``, both sides multiples of 64."""
    across, down = (int(part) for part in ratio.split(":"))
    width = math.sqrt(PIXELS * across / down)
    return round(width / 64) * 64, round(width * down / across / 64) * 64


def _problem(
    endpoint: str, fields: dict[str, str], files: dict[str, dict[str, Any]]
) -> tuple[int, str] | None:
    """The first reason the real API would refuse the request: (status, message), or None."""
    prompt = fields.get("prompt", "")
    if not prompt.strip() or len(prompt) > 10_000:
        return 400, "prompt: is required and at most 10000 characters"
    if fields.get("aspect_ratio", "1:1") not in ASPECT_RATIOS:
        return 400, f"aspect_ratio: must be one of {', '.join(ASPECT_RATIOS)}"
    if fields.get("output_format", "png") not in FORMATS[endpoint]:
        return 400, f"output_format: must be one of {', '.join(FORMATS[endpoint])}"
    try:
        seed = int(fields.get("seed", "0"))
        strength = float(fields.get("strength", "0.5"))
    except ValueError:
        return 400, "seed and strength must be numbers"
    if not 0 <= seed <= MAX_SEED:
        return 400, "seed: must be between 0 and 4294967294"
    if not 0 <= strength <= 1:
        return 400, "strength: must be between 0 and 1"
    image = "image" in files
    if endpoint == "core" and image:
        return 400, "image: is not a parameter of this endpoint"
    if endpoint == "sd3":
        mode = fields.get("mode", "text-to-image")
        if fields.get("model", SD3_MODELS[0]) not in SD3_MODELS:
            return 400, f"model: must be one of {', '.join(SD3_MODELS)}"
        if mode not in ("text-to-image", "image-to-image"):
            return 400, "mode: must be text-to-image or image-to-image"
        if (mode == "image-to-image") != image:
            return 400, "image: required exactly when mode is image-to-image"
        if mode == "image-to-image" and "aspect_ratio" in fields:
            return 400, "aspect_ratio: not used in image-to-image mode"
    if image and "strength" not in fields:
        return 400, "strength: is required when image is provided"
    return None


def make_app(plan: StabilityFaultPlan, api_key: str | None = None) -> web.Application:
    """The three generate endpoints under ``API_PATH``; point ``base_url`` at the root."""

    async def generate(request: web.Request) -> web.Response:
        endpoint = request.match_info["endpoint"]
        fields: dict[str, str] = {}
        parts: list[FormFile] = []
        if request.content_type.startswith("multipart/form-data"):
            fields, parts = await read_form(request)
        files = {part.name: part.summary() for part in parts}
        inputs = {part.name: part.data for part in parts}
        plan.record_request(request, {"fields": fields, "files": files})
        if not request.content_type.startswith("multipart/form-data"):
            return error_response(400, "content-type: must be multipart/form-data")
        fault, early = await admit(request, plan, api_key)
        if early is not None:
            return early
        problem = _problem(endpoint, fields, files)
        if problem is not None:
            return error_response(*problem)
        return _image_answer(request, fields, inputs.get("image"), fault)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post(API_PATH + "/{endpoint:core|ultra|sd3}", generate)
    return app


def _image_answer(
    request: web.Request, fields: dict[str, str], source: bytes | None, fault: Fault
) -> web.Response:
    output_format = fields.get("output_format", "png")
    seed = int(fields.get("seed") or 0) or random.randint(1, MAX_SEED)
    if source is not None:
        with Image.open(io.BytesIO(source)) as opened:
            size = opened.size
    else:
        size = size_for(fields.get("aspect_ratio", "1:1"))
    tint = hashlib.sha256(f"{fields['prompt']}/{seed}".encode()).digest()
    buffer = io.BytesIO()
    Image.new("RGB", size, (tint[0], tint[1], tint[2])).save(buffer, PIL_FORMATS[output_format])
    content_type = MEDIA_TYPES[output_format]
    image = buffer.getvalue()
    return generated_answer(request, fault, "image", image, content_type=content_type, seed=seed)
