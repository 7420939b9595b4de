"""Images through the ``stability`` kind: the official SDK against the gateway, the gateway against
a fake Stable Image API (Core, Ultra, SD3) speaking its documented multipart wire format.

The fake records each call's form fields, file parts and headers, so each test checks the
documented request as well as the answer (validated against OpenAI's ``ImagesResponse``).
Refusals are 400s naming the field before any upstream call; a CONTENT_FILTERED finish and
Stability's error answers map to the envelope.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import httpx
import orjson
import pytest
from openapi_spec_validator import validate

from tests.api.images.support import (
    assert_error,
    assert_upstream_failure,
    decode,
    failed_generation,
    fake_fixtures,
    fields_of_400,
    post_edit,
    post_generation,
    sdk,
    valid_answer,
)
from tests.conftest import TEST_ENV, GatewayFactory, auth, base_config
from tests.fakes.images import image_bytes
from tests.fakes.server import UvicornServer
from tests.fakes.stability_images_upstream import make_app
from tests.fakes.stability_upstream import StabilityFaultPlan

SECRET = "stability-images-secret-for-tests"
TEST_ENV["TEST_STABILITY_IMAGES_KEY"] = SECRET
PROMPT = "a fox in a snowy forest"
GENERATE = "/v2beta/stable-image/generate"
BOTH = ["image.text", "image.edit"]


def stability_config(url: str) -> dict[str, Any]:
    config = base_config()
    config["providers"]["stability"] = {
        "kind": "stability",
        "base_url": url,
        "api_key_env": "TEST_STABILITY_IMAGES_KEY",
        "read_timeout_s": 5.0,
    }
    config["models"].update(
        {
            "sd-core": {"provider": "stability", "model": "core", "capabilities": ["image.text"]},
            "sd-ultra": {"provider": "stability", "model": "ultra", "capabilities": BOTH},
            "sd-large": {"provider": "stability", "model": "sd3.5-large", "capabilities": BOTH},
        }
    )
    return config


served_fake, plan = fake_fixtures(StabilityFaultPlan, lambda fresh: make_app(fresh, SECRET))


@pytest.fixture
def server(
    gateway_factory: GatewayFactory, plan: StabilityFaultPlan, served_fake: tuple[Any, str]
) -> UvicornServer:
    return gateway_factory(stability_config(served_fake[1]))


def generate(server: UvicornServer, body: dict[str, Any]) -> httpx.Response:
    return post_generation(server, {"prompt": PROMPT, **body})


def test_sdk_generate_through_core_sends_the_documented_form(
    server: UvicornServer, plan: StabilityFaultPlan
) -> None:
    answer = sdk(server).images.generate(
        model="sd-core",
        prompt=PROMPT,
        size="1536x1024",
        output_format="webp",
        response_format="b64_json",
        extra_body={"seed": 42},
    )
    valid_answer(answer)
    assert answer.data is not None and len(answer.data) == 1
    image = decode(base64.b64decode(answer.data[0].b64_json or ""))
    assert image.format == "WEBP" and abs(image.width / image.height - 1.5) < 0.05
    (seen,) = plan.requests
    assert seen.path == GENERATE + "/core"
    assert seen.headers["authorization"] == f"Bearer {SECRET}"
    assert seen.headers["accept"] == "image/*"
    assert seen.headers["content-type"].startswith("multipart/form-data")
    assert seen.body == {
        "fields": {
            "prompt": PROMPT,
            "output_format": "webp",
            "seed": "42",
            "aspect_ratio": "3:2",
        },
        "files": {},
    }


def test_n_images_are_n_calls_with_consecutive_seeds(
    server: UvicornServer, plan: StabilityFaultPlan
) -> None:
    answer = sdk(server).images.generate(
        model="sd-ultra", prompt=PROMPT, n=3, size="1024x1024", extra_body={"seed": 7}
    )
    assert answer.data is not None and len(answer.data) == 3
    images = {item.b64_json for item in answer.data}
    assert len(images) == 3
    assert sorted(seen.body["fields"]["seed"] for seen in plan.requests) == ["7", "8", "9"]
    assert {seen.path for seen in plan.requests} == {GENERATE + "/ultra"}


def test_sdk_generate_url_through_sd3_names_the_model(
    server: UvicornServer, plan: StabilityFaultPlan
) -> None:
    answer = sdk(server).images.generate(
        model="sd-large", prompt=PROMPT, size="1024x1536", response_format="url"
    )
    valid_answer(answer)
    assert answer.data is not None
    url = answer.data[0].url or ""
    assert url.startswith(server.url + "/v1/artifacts/art_")
    content = httpx.get(url, headers=auth(), timeout=10)
    assert content.status_code == 200 and content.headers["content-type"] == "image/png"
    assert decode(content.content).height > decode(content.content).width
    (seen,) = plan.requests
    assert seen.path == GENERATE + "/sd3"
    assert seen.body["fields"] == {
        "prompt": PROMPT,
        "output_format": "png",
        "model": "sd3.5-large",
        "aspect_ratio": "2:3",
    }


def test_sdk_edit_through_ultra_sends_the_image_and_strength(
    server: UvicornServer, plan: StabilityFaultPlan
) -> None:
    source = image_bytes("JPEG", (640, 480), (30, 90, 200))
    answer = sdk(server).images.edit(
        model="sd-ultra",
        image=("photo.jpg", source, "image/jpeg"),
        prompt="make it autumn",
        output_format="jpeg",
        extra_body={"strength": 0.3},
    )
    valid_answer(answer)
    assert answer.data is not None
    image = decode(base64.b64decode(answer.data[0].b64_json or ""))
    assert (image.format, image.size) == ("JPEG", (640, 480))
    (seen,) = plan.requests
    assert seen.path == GENERATE + "/ultra"
    assert seen.body["fields"] == {
        "prompt": "make it autumn",
        "output_format": "jpeg",
        "strength": "0.3",
    }
    assert seen.body["files"]["image"]["sha256"] == hashlib.sha256(source).hexdigest()
    assert seen.body["files"]["image"]["content_type"] == "image/jpeg"


def test_sdk_edit_through_sd3_is_image_to_image_with_the_default_strength(
    server: UvicornServer, plan: StabilityFaultPlan
) -> None:
    source = image_bytes("PNG", (512, 512))
    answer = sdk(server).images.edit(
        model="sd-large", image=("a.png", source, "image/png"), prompt="in watercolour"
    )
    valid_answer(answer)
    fields = plan.requests[0].body["fields"]
    assert plan.requests[0].path == GENERATE + "/sd3"
    assert fields["mode"] == "image-to-image" and fields["strength"] == "0.5"
    assert fields["model"] == "sd3.5-large" and "aspect_ratio" not in fields


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "sd-core", "size": "999x999"}, "size"),
        ({"model": "sd-core", "n": 5}, "n"),
        ({"model": "sd-core", "background": "transparent"}, "background"),
        ({"model": "sd-large", "output_format": "webp"}, "output_format"),
    ],
)
def test_a_generation_stability_cannot_serve_is_a_400_naming_the_field(
    server: UvicornServer, plan: StabilityFaultPlan, body: dict[str, Any], field: str
) -> None:
    response = generate(server, body)
    assert field in fields_of_400(response)
    assert plan.calls == 0


@pytest.mark.parametrize(("extra", "field"), [("mask", "mask"), ("image", "image")])
def test_an_edit_stability_cannot_serve_is_a_400_naming_the_field(
    server: UvicornServer, plan: StabilityFaultPlan, extra: str, field: str
) -> None:
    source = image_bytes("PNG", (256, 256))
    fields = {"model": "sd-ultra", "prompt": "snow"}
    response = post_edit(server, fields, [("image", source), (extra, source)])  # mask, 2nd image
    assert fields_of_400(response) == [field]
    assert plan.calls == 0


def test_a_content_filtered_image_is_a_client_error(
    server: UvicornServer, plan: StabilityFaultPlan
) -> None:
    plan.push("filtered")
    response = generate(server, {"model": "sd-core"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and "moderation" in error["message"]
    assert plan.calls == 1  # the same prompt would be filtered again: no retry


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ({"status": 403}, 400, "invalid_request"),  # content_moderation
        ({"status": 401}, 502, "upstream_error"),
        ({"status": 402}, 502, "upstream_error"),
        ({"status": 429, "headers": {"retry-after": "0"}}, 429, "rate_limited"),
        ({"status": 500}, 502, "upstream_error"),
    ],
)
def test_stability_errors_map_to_the_envelope(
    server: UvicornServer, plan: StabilityFaultPlan, fault: dict[str, Any], status: int, code: str
) -> None:
    response = failed_generation(server, plan, fault, {"model": "sd-ultra", "prompt": PROMPT})
    assert_upstream_failure(response, status, code, (SECRET, "127.0.0.1"))


@pytest.mark.parametrize("fault", ["empty", "malformed"])
def test_an_answer_that_is_no_image_is_an_upstream_error(
    server: UvicornServer, plan: StabilityFaultPlan, fault: str
) -> None:
    plan.push(fault, times=2)
    assert_error(generate(server, {"model": "sd-core"}), 502, "upstream_error")


def test_the_openapi_document_states_what_stability_makes(server: UvicornServer) -> None:
    spec = httpx.get(server.url + "/openapi.json", timeout=10).json()
    validate(spec)
    text = orjson.dumps(spec).decode()
    assert "1920x1080" in text and "sd-ultra" in text
