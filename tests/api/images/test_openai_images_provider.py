"""Images through the ``openai`` kind: the official SDK against the gateway, the gateway against a
fake OpenAI Images API speaking its documented wire format.

The fake records what it received (JSON fields, multipart parts, the auth header), so each test
checks the documented request as well as the answer, which validates against OpenAI's
``ImagesResponse``. Refusals the adapter declares are 400s naming the field before any upstream
call; upstream failures map to the envelope as for chat.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import httpx
import pytest

from providers.chat.openai_compat import OpenAICompatAdapter
from providers.images.openai import OpenAIImagesAdapter
from tests.api.images.support import (
    assert_error,
    assert_upstream_failure,
    decode,
    failed_generation,
    fake_fixtures,
    fields_of_400,
    post_edit,
    post_generation,
    reference,
    sdk,
    valid_answer,
)
from tests.conftest import TEST_ENV, GatewayFactory, auth, base_config
from tests.fakes.images import image_bytes
from tests.fakes.openai_images_upstream import OpenAIImagesPlan, make_app
from tests.fakes.server import UvicornServer

SECRET = "openai-images-secret-for-tests"
TEST_ENV["TEST_OPENAI_IMAGES_KEY"] = SECRET
PROMPT = "a lighthouse on a cliff at dawn"
BOTH = ["image.text", "image.edit"]


def images_config(url: str) -> dict[str, Any]:
    config = base_config()

    def provider(**options: Any) -> dict[str, Any]:
        return {
            "kind": "openai",
            "base_url": url + "/v1",
            "api_key_env": "TEST_OPENAI_IMAGES_KEY",
            "read_timeout_s": 5.0,
            "options": options,
        }

    dall_e = {"image_formats": ["png"], "image_transparency": False, "image_masks": False}
    config["providers"].update(
        {
            "openai-images": provider(),
            "dalle3": provider(
                image_sizes=["1024x1024", "1792x1024", "1024x1792"],
                image_max_n=1,
                image_edits=False,
                **dall_e,
            ),
            "dalle2": provider(image_sizes=["256x256", "512x512", "1024x1024"], **dall_e),
        }
    )
    config["models"].update(
        {
            "gpt-image": {
                "provider": "openai-images",
                "model": "gpt-image-1",
                "capabilities": BOTH,
            },
            "dalle-3": {"provider": "dalle3", "model": "dall-e-3", "capabilities": ["image.text"]},
            "dalle-2": {"provider": "dalle2", "model": "dall-e-2", "capabilities": BOTH},
        }
    )
    return config


served_fake, plan = fake_fixtures(OpenAIImagesPlan, lambda fresh: make_app(fresh, SECRET))


@pytest.fixture
def fake_url(served_fake: tuple[OpenAIImagesPlan, str]) -> str:
    return served_fake[1]


@pytest.fixture
def server(gateway_factory: GatewayFactory, plan: OpenAIImagesPlan, fake_url: str) -> UvicornServer:
    return gateway_factory(images_config(fake_url))


def test_the_images_kind_is_the_chat_kind() -> None:
    assert OpenAIImagesAdapter.kind == OpenAICompatAdapter.kind


def test_sdk_generate_b64_json_sends_the_documented_json(
    server: UvicornServer, plan: OpenAIImagesPlan
) -> None:
    answer = sdk(server).images.generate(
        model="gpt-image",
        prompt=PROMPT,
        n=2,
        size="1536x1024",
        quality="high",
        background="opaque",
        output_format="webp",
        output_compression=80,
        response_format="b64_json",
    )
    valid_answer(answer)
    assert answer.data is not None and len(answer.data) == 2
    images = [decode(base64.b64decode(item.b64_json or "")) for item in answer.data]
    assert [(image.format, image.size) for image in images] == [("WEBP", (1536, 1024))] * 2
    (seen,) = plan.requests
    assert seen.path == "/v1/images/generations"
    assert seen.headers["authorization"] == f"Bearer {SECRET}"
    assert seen.headers["content-type"].startswith("application/json")
    assert seen.headers["x-request-id"]
    # GPT image models refuse response_format: the gateway's own choice never reaches them.
    assert seen.body == {
        "model": "gpt-image-1",
        "prompt": PROMPT,
        "n": 2,
        "size": "1536x1024",
        "quality": "high",
        "background": "opaque",
        "output_format": "webp",
        "output_compression": 80,
    }
    # What the gateway sends is itself a valid request of OpenAI's own schema.
    assert list(reference("CreateImageRequest").iter_errors(seen.body)) == []


def test_sdk_generate_url_answers_the_gateways_artifact(
    server: UvicornServer, plan: OpenAIImagesPlan, fake_url: str
) -> None:
    answer = sdk(server).images.generate(
        model="gpt-image", prompt=PROMPT, size="1024x1024", response_format="url"
    )
    valid_answer(answer)
    assert answer.data is not None
    url = answer.data[0].url or ""
    assert url.startswith(server.url + "/v1/artifacts/art_") and fake_url not in url
    content = httpx.get(url, headers=auth(), timeout=10)
    assert content.status_code == 200 and content.headers["content-type"] == "image/png"
    assert decode(content.content).size == (1024, 1024)
    assert "response_format" not in plan.requests[0].body


def test_dall_e_is_asked_for_b64_json_and_its_revised_prompt_is_kept(
    server: UvicornServer, plan: OpenAIImagesPlan
) -> None:
    answer = sdk(server).images.generate(
        model="dalle-3", prompt=PROMPT, size="1792x1024", quality="hd", response_format="url"
    )
    valid_answer(answer)
    assert answer.data is not None
    assert answer.data[0].revised_prompt == f"A detailed picture: {PROMPT}"
    assert plan.requests[0].body == {
        "model": "dall-e-3",
        "prompt": PROMPT,
        "n": 1,
        "size": "1792x1024",
        "quality": "hd",
        "response_format": "b64_json",
    }
    assert list(reference("CreateImageRequest").iter_errors(plan.requests[0].body)) == []
    assert plan.downloads == []  # the image came in the answer


def test_an_answered_url_is_downloaded_with_the_key_only_on_the_providers_origin(
    server: UvicornServer, plan: OpenAIImagesPlan, fake_url: str
) -> None:
    plan.answer_urls = True
    answer = sdk(server).images.generate(model="gpt-image", prompt=PROMPT, size="1024x1536")
    assert answer.data is not None
    assert decode(base64.b64decode(answer.data[0].b64_json or "")).size == (1024, 1536)
    assert plan.downloads[0]["authorization"] == f"Bearer {SECRET}"
    # The same fake under another name is another origin: the key must not follow the URL.
    plan.file_origin = fake_url.replace("127.0.0.1", "localhost")
    answer = sdk(server).images.generate(model="gpt-image", prompt=PROMPT, size="1024x1024")
    assert answer.data is not None and answer.data[0].b64_json
    assert len(plan.downloads) == 2 and "authorization" not in plan.downloads[1]


def test_a_failed_download_is_an_upstream_error(
    server: UvicornServer, plan: OpenAIImagesPlan
) -> None:
    plan.answer_urls = True
    plan.file_status = 403
    response = post_generation(server, {"model": "gpt-image", "prompt": PROMPT})
    assert_error(response, 502, "upstream_error")


def test_sdk_edit_sends_image_parts_and_the_mask(
    server: UvicornServer, plan: OpenAIImagesPlan
) -> None:
    first = image_bytes("PNG", (1024, 1024), (200, 40, 40))
    second = image_bytes("JPEG", (512, 512), (40, 200, 40))
    mask = image_bytes("PNG", (1024, 1024), (0, 0, 0))
    answer = sdk(server).images.edit(
        model="gpt-image",
        image=[("a.png", first, "image/png"), ("b.jpg", second, "image/jpeg")],
        mask=("mask.png", mask, "image/png"),
        prompt="add a red boat",
        size="1024x1024",
        output_format="jpeg",
        response_format="b64_json",
    )
    valid_answer(answer)
    assert answer.data is not None
    assert decode(base64.b64decode(answer.data[0].b64_json or "")).format == "JPEG"
    (seen,) = plan.requests
    assert seen.path == "/v1/images/edits"
    assert seen.headers["authorization"] == f"Bearer {SECRET}"
    assert seen.headers["content-type"].startswith("multipart/form-data")
    assert seen.body["fields"] == {
        "model": "gpt-image-1",
        "prompt": "add a red boat",
        "n": "1",
        "size": "1024x1024",
        "quality": "auto",
        "background": "auto",
        "output_format": "jpeg",
    }
    parts = [(p["name"], p["content_type"], p["sha256"]) for p in seen.body["files"]]
    assert parts == [
        ("image[]", "image/png", hashlib.sha256(first).hexdigest()),
        ("image[]", "image/jpeg", hashlib.sha256(second).hexdigest()),
        ("mask", "image/png", hashlib.sha256(mask).hexdigest()),
    ]


def test_sdk_edit_of_one_image_sends_the_image_part(
    server: UvicornServer, plan: OpenAIImagesPlan
) -> None:
    source = image_bytes("PNG", (256, 256))
    answer = sdk(server).images.edit(
        model="dalle-2", image=("a.png", source, "image/png"), prompt="snow", size="256x256"
    )
    valid_answer(answer)
    assert answer.data is not None
    assert decode(base64.b64decode(answer.data[0].b64_json or "")).size == (256, 256)
    fields = plan.requests[0].body["fields"]
    assert fields["response_format"] == "b64_json" and "output_format" not in fields
    assert [part["name"] for part in plan.requests[0].body["files"]] == ["image"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "gpt-image", "size": "999x999"}, "size"),
        ({"model": "gpt-image", "n": 10, "size": "1024x1024"}, None),
        ({"model": "dalle-3", "size": "1536x1024"}, "size"),
        ({"model": "dalle-3", "size": "1024x1024", "n": 2}, "n"),
        ({"model": "dalle-3", "size": "1024x1024", "output_format": "webp"}, "output_format"),
        ({"model": "dalle-3", "size": "1024x1024", "background": "transparent"}, "background"),
    ],
)
def test_a_generation_the_adapter_cannot_serve_is_a_400_naming_the_field(
    server: UvicornServer, plan: OpenAIImagesPlan, body: dict[str, Any], field: str | None
) -> None:
    response = post_generation(server, {"prompt": PROMPT, **body})
    if field is None:  # within what the adapter declares: served
        assert response.status_code == 200, response.text
        assert len(response.json()["data"]) == 10
        return
    assert field in fields_of_400(response)
    assert plan.calls == 0


def test_an_edit_with_a_mask_the_adapter_cannot_take_is_a_400(
    server: UvicornServer, plan: OpenAIImagesPlan
) -> None:
    source = image_bytes("PNG", (256, 256))
    fields = {"model": "dalle-2", "prompt": "snow", "size": "256x256"}
    response = post_edit(server, fields, [("image", source), ("mask", source)])
    assert fields_of_400(response) == ["mask"]
    assert plan.calls == 0


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        (
            {"status": 400, "message": "Your prompt was rejected.", "param": "prompt"},
            400,
            "invalid_request",
        ),
        (
            {"status": 401, "message": "Incorrect API key provided: sk-abc123"},
            502,
            "upstream_error",
        ),
        ({"status": 429, "headers": {"retry-after": "0"}}, 429, "rate_limited"),
        ({"status": 500}, 502, "upstream_error"),
    ],
)
def test_upstream_failures_map_to_the_envelope(
    server: UvicornServer, plan: OpenAIImagesPlan, fault: dict[str, Any], status: int, code: str
) -> None:
    response = failed_generation(server, plan, fault, {"model": "gpt-image", "prompt": PROMPT})
    error = assert_upstream_failure(response, status, code, (SECRET, "sk-abc"))
    if status == 400:
        assert error["details"][0]["field"] == "prompt"
        assert "Your prompt was rejected." in error["message"]


def test_a_malformed_answer_is_an_upstream_error(
    server: UvicornServer, plan: OpenAIImagesPlan
) -> None:
    plan.push("malformed", times=2)
    response = post_generation(server, {"model": "gpt-image", "prompt": PROMPT})
    assert_error(response, 502, "upstream_error")
