"""FLUX on Replicate behind ``/v1/images/*``: the official SDK through the gateway against the
fake predictions API. The fake sees FLUX's documented input, the client sees only the gateway's
answer (never a Replicate URL), and a prediction past the deadline or whose poll fails is
canceled. What Replicate promises as fal does (failed jobs, refusals, a client that leaves) is
in test_hosted_images."""

from __future__ import annotations

import base64
import threading

import httpx

from tests.api.images.conftest import REPLICATE_TOKEN, ImageFakes, hosted_config
from tests.api.images.support import (
    assert_error,
    decode,
    generated_images,
    images_response,
    post_generation,
    sdk,
)
from tests.conftest import GatewayFactory, auth, wait_until
from tests.fakes.images import image_bytes
from tests.fakes.server import UvicornServer


def test_sdk_generate_b64_json_sends_flux_input_and_returns_the_images(
    hosted: UvicornServer, fakes: ImageFakes
) -> None:
    images = generated_images(
        hosted,
        model="flux-schnell",
        prompt="a lighthouse at dusk",
        size="1536x1024",
        output_format="webp",
        n=2,
        extra_body={"seed": 7},
    )
    assert len(images) == 2
    for image in images:
        assert image.format == "WEBP" and image.size == (48, 32)  # the fake's 3:2
    (created,) = fakes.replicate.created
    assert created["model"] == "black-forest-labs/flux-schnell"
    assert created["input"] == {
        "prompt": "a lighthouse at dusk",
        "aspect_ratio": "3:2",
        "num_outputs": 2,
        "output_format": "webp",
        "seed": 7,
    }
    assert created["prefer"] is None
    assert fakes.replicate.requests[0].headers["authorization"] == f"Bearer {REPLICATE_TOKEN}"
    assert (
        fakes.replicate.requests[0].path == "/v1/models/black-forest-labs/flux-schnell/predictions"
    )
    assert len(fakes.replicate.polls) == 3  # starting, processing, succeeded
    downloads = [r for r in fakes.replicate.requests if r.path.startswith("/delivery/")]
    assert len(downloads) == 2 and all("authorization" not in r.headers for r in downloads)


def test_sdk_generate_url_is_the_gateways_own_artifact(
    hosted: UvicornServer, fakes: ImageFakes
) -> None:
    answer = sdk(hosted).images.generate(
        model="flux-schnell", prompt="a fox", output_format="jpeg", response_format="url"
    )
    assert answer.data is not None
    url = answer.data[0].url or ""
    assert url.startswith(hosted.url + "/v1/artifacts/art_")
    assert fakes.urls["replicate"] not in url
    content = httpx.get(url, headers=auth(), timeout=10)
    assert content.status_code == 200 and content.headers["content-type"] == "image/jpeg"
    assert decode(content.content).format == "JPEG"
    assert fakes.replicate.created[0]["input"]["output_format"] == "jpg"  # FLUX's spelling
    assert "aspect_ratio" not in fakes.replicate.created[0]["input"]  # auto: the model's own


def test_sdk_edit_sends_the_image_as_a_data_url_with_prompt_strength(
    hosted: UvicornServer, fakes: ImageFakes
) -> None:
    source = image_bytes("PNG", (32, 32))
    raw = sdk(hosted).images.with_raw_response.edit(
        model="flux-dev",
        image=("in.png", source, "image/png"),
        prompt="make it winter",
        size="1024x1024",
        extra_body={"strength": 0.6, "output_format": "png"},
    )
    images_response(raw.http_response.json())
    answer = raw.parse()
    assert answer.data is not None and len(answer.data) == 1
    assert decode(base64.b64decode(answer.data[0].b64_json or "")).format == "PNG"
    model_input = fakes.replicate.created[0]["input"]
    assert model_input["image"] == "data:image/png;base64," + base64.b64encode(source).decode()
    assert model_input["prompt_strength"] == 0.6
    assert model_input["aspect_ratio"] == "1:1" and model_input["num_outputs"] == 1


def test_kontext_takes_input_image_and_matches_its_ratio(
    hosted: UvicornServer, fakes: ImageFakes
) -> None:
    answer = sdk(hosted).images.edit(
        model="flux-kontext", image=("in.png", image_bytes("PNG"), "image/png"), prompt="noir"
    )
    assert answer.data is not None and len(answer.data) == 1
    model_input = fakes.replicate.created[0]["input"]
    assert model_input["input_image"].startswith("data:image/png;base64,")
    assert model_input["aspect_ratio"] == "match_input_image"
    assert "num_outputs" not in model_input and "image" not in model_input


def test_prefer_wait_answers_without_a_poll(
    gateway_factory: GatewayFactory, fakes: ImageFakes
) -> None:
    server = gateway_factory(hosted_config(fakes.urls, replicate={"prefer_wait_s": 30}))
    answer = sdk(server).images.generate(model="flux-schnell", prompt="a quick sketch")
    assert answer.data is not None and len(answer.data) == 1
    assert fakes.replicate.created[0]["prefer"] == "wait=30"
    assert fakes.replicate.polls == []


def test_a_prediction_past_the_providers_total_timeout_is_canceled_and_a_504(
    gateway_factory: GatewayFactory, fakes: ImageFakes
) -> None:
    config = hosted_config(fakes.urls)
    config["providers"]["replicate"]["total_timeout_s"] = 0.3
    server = gateway_factory(config)
    fakes.replicate.processing_polls = 1_000_000
    response = post_generation(server, {"model": "flux-schnell", "prompt": "too slow"})
    assert_error(response, 504, "upstream_timeout")
    assert fakes.replicate.cancels == [fakes.replicate.polls[0]]


def test_a_poll_that_fails_cancels_the_prediction_it_gives_up_on(
    hosted: UvicornServer, fakes: ImageFakes
) -> None:
    fakes.replicate.processing_polls = 1_000_000
    answers: list[httpx.Response] = []
    body = {"model": "flux-schnell", "prompt": "a render that loses its poll"}
    url = hosted.url + "/v1/images/generations"
    caller = threading.Thread(
        target=lambda: answers.append(httpx.post(url, json=body, headers=auth(), timeout=10))
    )
    caller.start()
    wait_until(lambda: len(fakes.replicate.polls) >= 2)
    fakes.replicate.push("status", status=500)  # the next poll fails
    caller.join(10)
    assert_error(answers[0], 502, "upstream_error")
    wait_until(lambda: fakes.replicate.cancels == [fakes.replicate.polls[0]])
