"""The pure pieces of the hosted image adapters: FLUX inputs for Replicate and fal, reading
their outputs, and naming output bytes."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from providers.base import UpstreamError
from providers.images import fal, replicate
from providers.images.base import ImageRequest
from providers.images.polling import checked_image, decode_data_uri, image_type
from tests.fakes.images import image_bytes


def ask(**changes: Any) -> ImageRequest:
    fields: dict[str, Any] = {
        "upstream_model": "black-forest-labs/flux-dev",
        "request_id": "req-1",
        "prompt": "a kite",
        "n": 1,
        "size": "auto",
        "output_format": "png",
    }
    return ImageRequest(**{**fields, **changes})


def test_replicate_input_maps_size_format_quality_and_strength() -> None:
    request = ask(size="768x1344", output_format="webp", output_compression=60, strength=0.3)
    body = replicate.build_input(request, "image", "data:image/png;base64,AA==")
    assert body == {
        "prompt": "a kite",
        "output_format": "webp",
        "aspect_ratio": "9:16",
        "num_outputs": 1,
        "output_quality": 60,
        "image": "data:image/png;base64,AA==",
        "prompt_strength": 0.3,
    }
    assert "output_quality" not in replicate.build_input(ask(output_compression=60), "image", None)


def test_kontext_makes_one_image_and_takes_no_strength() -> None:
    field = replicate.image_field("black-forest-labs/flux-kontext-pro", {})
    assert field == "input_image"
    body = replicate.build_input(ask(strength=0.5), field, "data:image/png;base64,AA==")
    assert body["aspect_ratio"] == "match_input_image" and "prompt_strength" not in body
    with pytest.raises(UpstreamError) as refused:
        replicate.build_input(ask(n=2), field, None)
    assert (refused.value.kind, refused.value.param) == ("client_error", "n")
    assert (
        replicate.image_field("acme/flux-kontext-fork", {"acme/flux-kontext-fork": "img"}) == "img"
    )


def test_replicate_outputs_are_a_list_or_one_url_and_never_empty() -> None:
    assert replicate.output_urls({"output": "https://x/a.png"}) == ["https://x/a.png"]
    assert replicate.output_urls({"output": ["https://x/a.png", 3]}) == ["https://x/a.png"]
    for finished in ({"output": None}, {"output": ["https://x/a"], "data_removed": True}):
        with pytest.raises(UpstreamError):
            replicate.output_urls(finished)


def test_fal_input_uses_named_sizes_else_width_and_height() -> None:
    assert fal.build_input(ask(size="1024x576"), None)["image_size"] == "landscape_16_9"
    assert fal.build_input(ask(size="1536x1024"), None)["image_size"] == {
        "width": 1536,
        "height": 1024,
    }
    edit = fal.build_input(ask(strength=0.9, seed=4, n=2), "data:image/png;base64,AA==")
    assert edit == {
        "prompt": "a kite",
        "num_images": 2,
        "output_format": "png",
        "seed": 4,
        "image_url": "data:image/png;base64,AA==",
        "strength": 0.9,
    }


def test_fal_result_images_must_hold_a_url() -> None:
    raw = orjson.dumps({"images": [{"url": "https://cdn/a.png"}, {"width": 3}], "seed": 1})
    assert fal.result_images(raw) == ["https://cdn/a.png"]
    with pytest.raises(UpstreamError):
        fal.result_images(orjson.dumps({"images": []}))


def test_outputs_are_named_by_their_bytes() -> None:
    for pil_format, content_type in (("PNG", "image/png"), ("JPEG", "image/jpeg")):
        assert image_type(image_bytes(pil_format)) == content_type
    assert image_type(image_bytes("WEBP")) == "image/webp"
    with pytest.raises(UpstreamError):
        checked_image(b"<html>an error page</html>")


def test_data_uris_must_be_base64() -> None:
    data = image_bytes("PNG")
    assert decode_data_uri("data:image/png;base64," + base64.b64encode(data).decode()) == data
    for broken in ("data:image/png,rawbytes", "data:image/png;base64,@@@"):
        with pytest.raises(UpstreamError):
            decode_data_uri(broken)
