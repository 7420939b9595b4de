"""``POST /v1/images/edits`` through the official SDK and raw multipart, on the offline model:
edits derive from their input, uploads are reused by id, and bad images get the envelope."""

from __future__ import annotations

import base64
import io
import resource
from typing import Any

import httpx
import pytest
from PIL import Image, ImageChops, ImageStat

from tests.api.images.support import decode, sdk, valid_answer
from tests.api.images.test_generations import image_config
from tests.conftest import DEV_KEY, SECOND_KEY, GatewayFactory, auth
from tests.fakes.audio import tone_wav
from tests.fakes.images import image_bytes, png_bomb_chunks
from tests.fakes.server import UvicornServer

EDITS = "/v1/images/edits"


@pytest.fixture
def server(gateway_factory: GatewayFactory) -> UvicornServer:
    return gateway_factory(image_config())


def distance(a: Image.Image, b: Image.Image) -> float:
    small = (64, 64)
    diff = ImageChops.difference(a.convert("RGB").resize(small), b.convert("RGB").resize(small))
    return sum(ImageStat.Stat(diff).mean) / 3


def stripes() -> bytes:
    """A recognisable input: red and yellow vertical stripes."""
    image = Image.new("RGB", (256, 256), (220, 30, 30))
    for x in range(0, 256, 64):
        image.paste((250, 220, 40), (x, 0, x + 32, 256))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def post_form(
    server: UvicornServer,
    fields: dict[str, str],
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None,
    key: str = DEV_KEY,
) -> httpx.Response:
    parts: list[tuple[str, Any]] = [(name, (None, value)) for name, value in fields.items()]
    return httpx.post(
        server.url + EDITS, files=[*parts, *(files or [])], headers=auth(key), timeout=30
    )


def test_sdk_edit_derives_from_its_input_and_validates(server: UvicornServer) -> None:
    source = stripes()
    unrelated = decode(image_bytes("PNG", (256, 256), (30, 160, 60)))
    answer = sdk(server).images.edit(
        model="local-image", image=("stripes.png", source, "image/png"), prompt="navy ocean"
    )
    valid_answer(answer)
    assert answer.data is not None
    edited = decode(base64.b64decode(answer.data[0].b64_json or ""))
    assert edited.size == (256, 256)  # size auto: the input's own
    original = decode(source)
    assert distance(edited, original) < distance(edited, unrelated)
    assert distance(edited, original) > 5


def test_sdk_edit_with_several_images_a_mask_and_a_url(server: UvicornServer) -> None:
    mask = Image.new("RGBA", (256, 256), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 128, 256))
    buffer = io.BytesIO()
    mask.save(buffer, "PNG")
    answer = sdk(server).images.edit(
        model="local-image",
        image=[("a.png", stripes(), "image/png"), ("b.webp", image_bytes("WEBP"), "image/webp")],
        mask=("mask.png", buffer.getvalue(), "image/png"),
        prompt="teal night",
        size="512x512",
        response_format="url",
        output_format="jpeg",
        extra_body={"strength": 1.0},
    )
    assert answer.data is not None
    url = answer.data[0].url or ""
    content = httpx.get(url, headers=auth(), timeout=10)
    assert content.headers["content-type"] == "image/jpeg"
    edited = decode(content.content)
    assert edited.size == (512, 512)
    original = decode(stripes()).resize((512, 512))
    right, left = (256, 0, 512, 512), (0, 0, 256, 512)
    assert distance(edited.crop(right), original.crop(right)) < 5  # the opaque half is kept
    assert distance(edited.crop(left), original.crop(left)) > 20
    metrics = httpx.get(server.url + "/metrics", timeout=10).text
    assert 'beatra_images_total{kind="edit",model="local-image"} 1.0' in metrics


def test_an_uploaded_image_is_edited_by_its_id_and_only_by_its_owner(
    server: UvicornServer,
) -> None:
    files = {"file": ("s.png", stripes(), "application/octet-stream")}
    uploads = server.url + "/v1/uploads"
    artifact_id = httpx.post(uploads, files=files, headers=auth(), timeout=10).json()["artifact_id"]
    fields = {"prompt": "gold", "image_artifact_id": artifact_id, "seed": "3", "strength": "0.4"}
    first = post_form(server, fields)
    assert first.status_code == 200, first.text
    assert post_form(server, fields).json()["data"] == first.json()["data"]  # seeded: same bytes
    other = post_form(server, fields, key=SECOND_KEY)
    assert other.status_code == 404
    assert other.json()["error"]["details"][0]["field"] == "image_artifact_id"
    audio = {"file": ("t.wav", tone_wav(), "audio/wav")}
    audio_id = httpx.post(uploads, files=audio, headers=auth(), timeout=10).json()["artifact_id"]
    refused = post_form(server, {**fields, "image_artifact_id": audio_id})
    assert refused.status_code == 400
    assert refused.json()["error"]["details"][0]["field"] == "image_artifact_id"


PNG_PART = ("image", ("a.png", stripes(), "image/png"))
MASK_PART = ("mask", ("m.png", stripes(), "image/png"))


@pytest.mark.parametrize(
    ("fields", "files", "status", "field"),
    [
        ({"prompt": "x"}, [], 400, "image"),
        ({"prompt": "x"}, [("image", ("a.txt", b"not an image", "image/png"))], 415, None),
        ({"prompt": "x", "n": "many"}, [("image", ("a.png", b"", "image/png"))], 400, "n"),
        ({"prompt": "x"}, [PNG_PART, MASK_PART, MASK_PART], 400, "mask"),
        ({"prompt": "x", "image_artifact_id": "art_x"}, [PNG_PART], 404, "image_artifact_id"),
        ({"prompt": "x", "model": "local-chat"}, [PNG_PART], 400, "model"),
        ({"prompt": "x", "size": "64x64"}, [PNG_PART], 400, "size"),
    ],
)
def test_bad_edits_get_the_envelope(
    server: UvicornServer,
    fields: dict[str, str],
    files: list[tuple[str, tuple[str, bytes, str]]],
    status: int,
    field: str | None,
) -> None:
    response = post_form(server, fields, files)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["request_id"] == response.headers["x-request-id"]
    if field is not None:
        assert field in [detail["field"] for detail in error["details"]]


def test_a_bomb_as_the_image_to_edit_is_refused_before_decoding(server: UvicornServer) -> None:
    bomb = b"".join(png_bomb_chunks(30_000, 30_000))
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    response = post_form(server, {"prompt": "x"}, [("image", ("bomb.png", bomb, "image/png"))])
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "payload_too_large"
    peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert peak_after - peak_before < 32 * 1024 * 1024
