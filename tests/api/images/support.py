"""What the image API tests share: the SDK client, decoding and schema checks of answers, the
calls they make on the gateway, and serving a fake upstream reset around each test."""

from __future__ import annotations

import base64
import io
import json
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
import openai
import orjson
import pytest
from aiohttp import web
from jsonschema import Draft202012Validator, FormatChecker
from PIL import Image

from tests.conftest import DEV_KEY, auth
from tests.fakes.faults import FaultPlan
from tests.fakes.images import image_bytes
from tests.fakes.server import UvicornServer, serve_aiohttp

REFERENCE = Path(__file__).resolve().parents[2] / "reference" / "openai_image_schemas.json"
GENERATIONS = "/v1/images/generations"
EDITS = "/v1/images/edits"


class Resettable(Protocol):
    def reset(self) -> None: ...


PlanT = TypeVar("PlanT", bound=Resettable)


def sdk(server: UvicornServer, key: str = DEV_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def reference(name: str) -> Draft202012Validator:
    schemas = json.loads(REFERENCE.read_text())["schemas"]
    return Draft202012Validator(schemas[name], format_checker=FormatChecker())


def images_response(answer: object) -> None:
    """``answer`` (decoded JSON) is a valid ``ImagesResponse``."""
    assert [e.message for e in reference("ImagesResponse").iter_errors(answer)] == []


def generated_images(server: UvicornServer, **arguments: Any) -> list[Image.Image]:
    """``images.generate`` through the SDK as ``b64_json``: the raw answer checked against
    ``ImagesResponse``, its images decoded."""
    raw = sdk(server).images.with_raw_response.generate(response_format="b64_json", **arguments)
    images_response(raw.http_response.json())
    answer = raw.parse()
    assert answer.data is not None
    return [decode(base64.b64decode(item.b64_json or "")) for item in answer.data]


def valid_answer(answer: Any) -> None:
    """An SDK answer is a valid ``ImagesResponse``."""
    images_response(answer.model_dump(exclude_none=True))


def post_generation(server: UvicornServer, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.url + GENERATIONS, json=body, headers=auth(), timeout=30)


def post_edit(
    server: UvicornServer, fields: dict[str, str], files: list[tuple[str, bytes]]
) -> httpx.Response:
    """A raw multipart edit: text ``fields``, then PNG file parts ``(name, data)``."""
    parts: list[tuple[str, tuple[str | None, str | bytes] | tuple[str, bytes, str]]] = [
        (name, (None, value)) for name, value in fields.items()
    ]
    parts += [(name, (f"{name}.png", data, "image/png")) for name, data in files]
    return httpx.post(server.url + EDITS, files=parts, headers=auth(), timeout=10)


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The gateway's envelope with ``status`` and ``code``; its error object, to look further."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    return error


def fields_of_400(response: httpx.Response) -> list[str]:
    """The fields a gateway 400 names (the response must be one)."""
    error = assert_error(response, 400, "invalid_request")
    return [detail["field"] for detail in error.get("details", [])]


def failed_generation(
    server: UvicornServer, plan: FaultPlan, fault: dict[str, Any], body: dict[str, Any]
) -> httpx.Response:
    """A generation whose upstream answers the ``status`` fault ``fault`` (twice: a retry
    meets it again)."""
    plan.push("status", times=2, **fault)
    return post_generation(server, body)


def assert_upstream_failure(
    response: httpx.Response, status: int, code: str, hidden: tuple[str, ...]
) -> dict[str, Any]:
    """The envelope of an upstream failure: ``status`` and ``code``, the request's id, and
    none of the ``hidden`` strings (keys, upstream hosts); its error object."""
    error = assert_error(response, status, code)
    assert error["request_id"] == response.headers["x-request-id"]
    assert not [text for text in hidden if text in response.text]
    return error


def refused_fields(call: Callable[..., object], **arguments: Any) -> list[str]:
    """The fields named by the 400 that the SDK's ``call(**arguments)`` raises."""
    with pytest.raises(openai.BadRequestError) as refused:
        call(**arguments)
    body: Any = refused.value.body
    return [detail["field"] for detail in body["details"]]


def masked_edit(model: str) -> dict[str, Any]:
    """The arguments of an SDK edit of a PNG with a mask."""
    return {
        "model": model,
        "image": ("in.png", image_bytes("PNG"), "image/png"),
        "mask": ("mask.png", image_bytes("PNG"), "image/png"),
        "prompt": "x",
    }


@contextmanager
def abandoned_generation(server: UvicornServer, body: dict[str, Any]) -> Iterator[None]:
    """A generation sent on a raw socket that closes when the block ends, answer unread."""
    payload = orjson.dumps(body)
    head = (
        f"POST {GENERATIONS} HTTP/1.1\r\nhost: {server.url[7:]}\r\n"
        f"authorization: Bearer {DEV_KEY}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(payload)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port)) as client:
        client.sendall(head.encode() + payload)
        yield


def fake_fixtures(
    new_plan: Callable[[], PlanT], app: Callable[[PlanT], web.Application]
) -> tuple[Any, Any]:
    """A module's fixtures over one fake upstream, to bind as ``served_fake, plan``:
    ``served_fake`` (module scope) is the plan and the URL of the serving fake, ``plan`` that
    plan, fresh for each test and left fresh after it."""

    @pytest.fixture(scope="module")
    def served_fake() -> Iterator[tuple[PlanT, str]]:
        fresh = new_plan()
        with serve_aiohttp(app(fresh)) as url:
            yield fresh, url

    @pytest.fixture
    def plan(served_fake: tuple[PlanT, str]) -> Iterator[PlanT]:
        yield from reset_around(served_fake[0])

    return served_fake, plan


def reset_around(plan: PlanT) -> Iterator[PlanT]:
    """For a test fixture: ``plan`` fresh for the test and left fresh after it."""
    plan.reset()
    yield plan
    plan.reset()
