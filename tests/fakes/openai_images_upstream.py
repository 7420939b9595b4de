"""A fake OpenAI Images API: generations (JSON) and edits (multipart), with faults.

The documented wire format it follows (OpenAI API reference, Images):

- ``POST /v1/images/generations``, JSON: ``prompt`` (required), ``model`` (default
  ``dall-e-2``), ``n`` (1-10; ``dall-e-3`` only 1), ``size``, ``quality``, ``response_format``
  (``url`` or ``b64_json``: DALL-E only, a GPT image model refuses it and always answers base64),
  ``output_format``, ``background`` and ``output_compression`` (GPT image models only), ``user``.
- ``POST /v1/images/edits``, ``multipart/form-data``: the same fields as text, the file part
  ``image`` (or ``image[]`` repeated, up to 16) and an optional ``mask``.
- ``authorization: Bearer <key>``; errors are ``{"error": {"message", "type", "param", "code"}}``.
- The answer: ``{"created", "data": [{"b64_json"} or {"url"}], ...}``; GPT image models add
  ``background``, ``output_format``, ``quality``, ``size`` and ``usage``, ``dall-e-3`` a
  ``revised_prompt`` per image.

The images are real PNG, JPEG or WebP bytes of the asked size (``auto``: 1024x1024), coloured by
the prompt and the image's index. A URL answer points at this fake's own ``GET /files/NAME``.
``OpenAIImagesPlan`` adds ``answer_urls`` (answer URLs whatever was asked, as some compatible
servers do), ``file_origin`` (the URLs' origin: another name for this fake stands for another
host) and ``file_status`` (the file host's failure status); it records every download's
headers in ``downloads``. Faults: ``status``, ``reset``, ``slow``, ``malformed`` (JSON cut short).
Each request is recorded: a generation's JSON body; an edit's text ``fields`` and, per file part
in order, its ``name``, ``content_type``, ``size`` and ``sha256``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import time
import uuid
from typing import Any

import orjson
from aiohttp import web
from PIL import Image

from tests.fakes.faults import FaultPlan, play_shared_fault
from tests.fakes.multipart_form import FormFile, read_form

GPT_SIZES = ("auto", "1024x1024", "1536x1024", "1024x1536")
DALL_E_SIZES = {
    "dall-e-2": ("256x256", "512x512", "1024x1024"),
    "dall-e-3": ("1024x1024", "1792x1024", "1024x1792"),
}
GPT_ONLY = ("output_format", "background", "output_compression")
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error"}


class OpenAIImagesPlan(FaultPlan):
    """A ``FaultPlan`` with the images fake's own switches and its file host's record."""

    def __init__(self) -> None:
        super().__init__()
        self.answer_urls = False
        self.file_status: int | None = None
        self.file_origin: str | None = None  # where answered URLs point (default: this fake)
        self.files: dict[str, bytes] = {}
        self.downloads: list[dict[str, str]] = []

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.answer_urls = False
            self.file_status = None
            self.file_origin = None
            self.files.clear()
            self.downloads.clear()


def error_response(status: int, message: str, param: str | None = None) -> web.Response:
    body = {
        "error": {
            "message": message,
            "type": ERROR_TYPES.get(status, "server_error"),
            "param": param,
            "code": None,
        }
    }
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def picture(size: str, output_format: str, prompt: str, index: int) -> bytes:
    """A real image of ``size`` whose colour follows the prompt and the image's index."""
    width, _, height = ("1024x1024" if size == "auto" else size).partition("x")
    seed = hashlib.sha256(f"{prompt}/{index}".encode()).digest()
    buffer = io.BytesIO()
    image = Image.new("RGB", (int(width), int(height)), (seed[0], seed[1], seed[2]))
    image.save(buffer, PIL_FORMATS[output_format])
    return buffer.getvalue()


def _problem(fields: dict[str, Any], edit: bool, images: int) -> tuple[str, str] | None:
    """The first reason OpenAI would answer 400: (message, param), or None."""
    model = str(fields.get("model") or "dall-e-2")
    gpt = model.startswith("gpt-image")
    if not isinstance(fields.get("prompt"), str) or not fields["prompt"]:
        return "Missing required parameter: 'prompt'.", "prompt"
    if gpt and "response_format" in fields:
        return "Unknown parameter: 'response_format'.", "response_format"
    if not gpt:
        for name in GPT_ONLY:
            if name in fields:
                return f"Unknown parameter: '{name}'.", name
    try:
        n = int(fields.get("n", 1))
    except ValueError:
        return "Invalid type for 'n'.", "n"
    if not 1 <= n <= (1 if model == "dall-e-3" else 10):
        return "Invalid 'n': out of range.", "n"
    sizes: tuple[str, ...] = GPT_SIZES if gpt else DALL_E_SIZES.get(model, ())
    if fields.get("size", "auto" if gpt else "1024x1024") not in sizes:
        return f"Invalid size for {model}.", "size"
    if fields.get("output_format", "png") not in PIL_FORMATS:
        return "Invalid 'output_format'.", "output_format"
    if edit and images == 0:
        return "Missing required parameter: 'image'.", "image"
    if edit and images > (16 if gpt else 1):
        return "Too many images.", "image"
    return None


def make_app(plan: OpenAIImagesPlan, api_key: str | None = None) -> web.Application:
    """The two image endpoints under ``/v1`` and the file host at ``/files``."""

    async def answer(request: web.Request, fields: dict[str, Any], images: int) -> web.Response:
        fault = plan.take()
        if api_key is not None and request.headers.get("authorization") != f"Bearer {api_key}":
            return error_response(401, "Incorrect API key provided.")
        early = await play_shared_fault(
            request,
            plan,
            fault,
            lambda f: error_response(f.status, f.message, f.param),
            malformed=b'{"created": 1, "data": [{"b64_json": "iVBOR',
        )
        if early is not None:
            return early
        problem = _problem(fields, request.path.endswith("/edits"), images)
        if problem is not None:
            return error_response(400, *problem)
        return _images_answer(request, plan, fields)

    async def generations(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        plan.record_request(request, body)
        if not isinstance(body, dict):
            return error_response(400, "We could not parse the JSON body of your request.")
        return await answer(request, body, 0)

    async def edits(request: web.Request) -> web.Response:
        fields: dict[str, str] = {}
        parts: list[FormFile] = []
        if request.content_type.startswith("multipart/form-data"):
            fields, parts = await read_form(request)
        files = [{"name": part.name, **part.summary()} for part in parts]
        plan.record_request(request, {"fields": fields, "files": files})
        images = sum(1 for part in files if part["name"] in ("image", "image[]"))
        return await answer(request, fields, images)

    async def file(request: web.Request) -> web.Response:
        plan.downloads.append({k.lower(): v for k, v in request.headers.items()})
        if plan.file_status is not None:
            return web.Response(status=plan.file_status, text="<Error>AccessDenied</Error>")
        data = plan.files.get(request.match_info["name"])
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type="image/png")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/images/generations", generations)
    app.router.add_post("/v1/images/edits", edits)
    app.router.add_get("/files/{name}", file)
    return app


def _images_answer(
    request: web.Request, plan: OpenAIImagesPlan, fields: dict[str, Any]
) -> web.Response:
    model = str(fields.get("model") or "dall-e-2")
    gpt = model.startswith("gpt-image")
    size = str(fields.get("size") or ("auto" if gpt else "1024x1024"))
    output_format = str(fields.get("output_format") or "png")
    urls = plan.answer_urls or (not gpt and fields.get("response_format", "url") == "url")
    data: list[dict[str, str]] = []
    for index in range(int(fields.get("n", 1))):
        image = picture(size, output_format, str(fields["prompt"]), index)
        item: dict[str, str] = {}
        if urls:
            name = f"{uuid.uuid4().hex}.{output_format}"
            plan.files[name] = image
            host = plan.file_origin or f"{request.scheme}://{request.host}"
            item["url"] = f"{host}/files/{name}"
        else:
            item["b64_json"] = base64.b64encode(image).decode()
        if model == "dall-e-3":
            item["revised_prompt"] = f"A detailed picture: {fields['prompt']}"
        data.append(item)
    answer: dict[str, Any] = {"created": int(time.time()), "data": data}
    if gpt:
        answer.update(
            background="opaque" if fields.get("background") != "transparent" else "transparent",
            output_format=output_format,
            quality="medium" if fields.get("quality", "auto") == "auto" else fields["quality"],
            size="1024x1024" if size == "auto" else size,
            usage={
                "input_tokens": 12,
                "output_tokens": 272,
                "total_tokens": 284,
                "input_tokens_details": {"text_tokens": 12, "image_tokens": 0},
            },
        )
    return web.Response(body=orjson.dumps(answer), content_type="application/json")
