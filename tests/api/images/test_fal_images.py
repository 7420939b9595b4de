"""FLUX on fal.ai behind ``/v1/images/*``: the official SDK through the gateway against the fake
queue. The fake sees the documented submit, status, result and file calls; the client sees only
the gateway's answer (never a fal URL). What fal promises as Replicate does (failed jobs,
refusals, cancels) is in test_hosted_images."""

from __future__ import annotations

import base64

import httpx

from tests.api.images.conftest import FAL_KEY, ImageFakes
from tests.api.images.support import (
    decode,
    generated_images,
    images_response,
    refused_fields,
    sdk,
)
from tests.conftest import auth
from tests.fakes.images import image_bytes
from tests.fakes.server import UvicornServer


def test_sdk_generate_b64_json_through_the_queue(hosted: UvicornServer, fakes: ImageFakes) -> None:
    images = generated_images(
        hosted,
        model="fal-flux",
        prompt="a paper boat",
        size="1024x768",
        output_format="png",
        n=3,
        extra_body={"seed": 5},
    )
    assert len(images) == 3
    for image in images:
        assert (image.format, image.size) == ("PNG", (64, 48))  # a sixteenth of 1024x768
    (submitted,) = fakes.fal.submitted
    assert submitted == {
        "model": "fal-ai/flux/schnell",
        "input": {
            "prompt": "a paper boat",
            "image_size": "landscape_4_3",
            "num_images": 3,
            "output_format": "png",
            "seed": 5,
        },
    }
    paths = [r.path for r in fakes.fal.requests]
    assert paths[0] == "/fal-ai/flux/schnell"
    (job_id,) = set(fakes.fal.status_polls)
    # The URLs fal answered at submit (owner/app only), never rebuilt from the model id.
    assert f"/fal-ai/flux/requests/{job_id}/status" in paths
    assert f"/fal-ai/flux/requests/{job_id}" in paths
    queue = [r for r in fakes.fal.requests if not r.path.startswith("/files/")]
    assert all(r.headers["authorization"] == f"Key {FAL_KEY}" for r in queue)
    files = [r for r in fakes.fal.requests if r.path.startswith("/files/")]
    assert len(files) == 3 and all("authorization" not in r.headers for r in files)


def test_sdk_generate_url_with_a_custom_size_and_inline_results(
    hosted: UvicornServer, fakes: ImageFakes
) -> None:
    fakes.fal.inline_images = True
    answer = sdk(hosted).images.generate(
        model="fal-flux", prompt="dunes", size="1536x1024", response_format="url"
    )
    assert answer.data is not None
    url = answer.data[0].url or ""
    assert url.startswith(hosted.url + "/v1/artifacts/art_")
    content = httpx.get(url, headers=auth(), timeout=10)
    assert content.headers["content-type"] == "image/png"
    assert decode(content.content).size == (96, 64)
    model_input = fakes.fal.submitted[0]["input"]
    assert model_input["image_size"] == {"width": 1536, "height": 1024}
    assert not any(r.path.startswith("/files/") for r in fakes.fal.requests)


def test_sdk_edit_sends_image_url_and_strength_to_image_to_image(
    hosted: UvicornServer, fakes: ImageFakes
) -> None:
    source = image_bytes("JPEG", (40, 30))
    raw = sdk(hosted).images.with_raw_response.edit(
        model="fal-flux-edit",
        image=("in.jpg", source, "image/jpeg"),
        prompt="as a watercolour",
        extra_body={"strength": 0.35, "output_format": "jpeg"},
    )
    images_response(raw.http_response.json())
    answer = raw.parse()
    assert answer.data is not None
    assert decode(base64.b64decode(answer.data[0].b64_json or "")).format == "JPEG"
    (submitted,) = fakes.fal.submitted
    assert submitted["model"] == "fal-ai/flux/dev/image-to-image"
    model_input = submitted["input"]
    assert model_input["image_url"] == "data:image/jpeg;base64," + base64.b64encode(source).decode()
    assert model_input["strength"] == 0.35
    assert "image_size" not in model_input  # auto: the model follows the input
    assert fakes.fal.requests[0].path == "/fal-ai/flux/dev/image-to-image"


def test_webp_is_a_400_naming_the_field(hosted: UvicornServer, fakes: ImageFakes) -> None:
    webp = {"model": "fal-flux", "prompt": "x", "output_format": "webp"}
    assert refused_fields(sdk(hosted).images.generate, **webp) == ["output_format"]
    assert fakes.fal.submitted == []
