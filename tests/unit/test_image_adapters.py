"""The pure parts of the openai and stability image adapters: the fields they send, the answers
they accept, the sizes they map, and the options they refuse at start."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from providers.base import ProviderSettings, UpstreamError
from providers.images.base import ImageRequest, InputImage
from providers.images.openai import (
    OpenAIImagesAdapter,
    data_url_bytes,
    edit_files,
    parse_answer,
    request_fields,
)
from providers.images.stability import (
    Route,
    StabilityImagesAdapter,
    aspect_ratio,
    build_form,
    parse_image_reply,
    route,
)
from tests.fakes.images import image_bytes

PNG = image_bytes("PNG", (8, 8))


def ask(model: str, **fields: Any) -> ImageRequest:
    base: dict[str, Any] = {
        "upstream_model": model,
        "request_id": "req-1",
        "prompt": "a boat",
        "n": 1,
        "size": "auto",
        "output_format": "png",
    }
    return ImageRequest(**{**base, **fields})


def test_gpt_image_fields_leave_out_what_the_api_refuses() -> None:
    fields = request_fields(ask("gpt-image-1", output_compression=50))
    assert fields == {
        "model": "gpt-image-1",
        "prompt": "a boat",
        "n": 1,
        "size": "auto",
        "quality": "auto",
        "background": "auto",
        "output_format": "png",
    }
    webp = request_fields(ask("gpt-image-1", output_format="webp", output_compression=50))
    assert webp["output_compression"] == 50
    assert request_fields(ask("gpt-image-1"), ask_b64=True)["response_format"] == "b64_json"


def test_dall_e_fields_ask_for_base64_and_keep_its_own_qualities() -> None:
    assert request_fields(ask("dall-e-2", quality="high")) == {
        "model": "dall-e-2",
        "prompt": "a boat",
        "n": 1,
        "response_format": "b64_json",
    }
    fields = request_fields(ask("dall-e-3", size="1024x1792", quality="hd"))
    assert (fields["size"], fields["quality"]) == ("1024x1792", "hd")


def test_edit_parts_name_one_image_image_and_several_image_brackets() -> None:
    one = ask("gpt-image-1", images=(InputImage(PNG, "image/png"),))
    assert [(p.field, p.filename) for p in edit_files(one)] == [("image", "image-1.png")]
    jpeg = InputImage(image_bytes("JPEG"), "image/jpeg")
    two = ask("gpt-image-1", images=(InputImage(PNG, "image/png"), jpeg), mask=jpeg)
    assert [(p.field, p.filename) for p in edit_files(two)] == [
        ("image[]", "image-1.png"),
        ("image[]", "image-2.jpg"),
        ("mask", "mask.jpg"),
    ]


def test_answers_give_bytes_or_urls_and_refuse_anything_else() -> None:
    encoded = base64.b64encode(PNG).decode()
    body = {"data": [{"b64_json": encoded, "revised_prompt": "r"}, {"url": "https://x/1.png"}]}
    first, second = parse_answer(orjson.dumps(body))
    assert (first.data, first.revised_prompt, second.url) == (PNG, "r", "https://x/1.png")
    for broken in (b"{", b'{"data": []}', b'{"data": [{}]}', b'{"data": [{"b64_json": "!!"}]}'):
        with pytest.raises(UpstreamError) as caught:
            parse_answer(broken)
        assert caught.value.kind == "server"
    assert data_url_bytes("data:image/png;base64," + encoded) == PNG
    assert data_url_bytes("https://x/1.png") is None


@pytest.mark.parametrize(
    ("size", "ratio"),
    [("auto", None), ("1024x1024", "1:1"), ("1536x1024", "3:2"), ("2016x864", "21:9")],
)
def test_sizes_map_to_stability_aspect_ratios(size: str, ratio: str | None) -> None:
    assert aspect_ratio(size) == ratio


def test_models_route_to_their_endpoint() -> None:
    assert route("core") == Route("/core") and route("stable-image-ultra") == Route("/ultra")
    assert route("sd3") == Route("/sd3") and route("sd3.5-medium") == Route("/sd3", "sd3.5-medium")
    with pytest.raises(UpstreamError) as caught:
        route("stable-audio-2")
    assert caught.value.kind == "server"


def test_stability_forms_refuse_what_the_endpoint_cannot_take() -> None:
    image = InputImage(PNG, "image/png")
    with pytest.raises(UpstreamError) as caught:
        build_form(ask("core", images=(image,)), route("core"), None, 0.5)
    assert (caught.value.kind, caught.value.param) == ("client_error", "image")
    with pytest.raises(UpstreamError) as caught:
        build_form(ask("sd3", output_format="webp"), route("sd3"), None, 0.5)
    assert caught.value.param == "output_format"
    form, files = build_form(ask("sd3", images=(image,), strength=1.0), route("sd3"), 3, 0.5)
    assert dict(form) == {
        "prompt": "a boat",
        "output_format": "png",
        "seed": "3",
        "mode": "image-to-image",
        "strength": "1",
    }
    assert [(f.field, f.data) for f in files] == [("image", PNG)]


def test_stability_replies_must_finish_with_an_image() -> None:
    ok = parse_image_reply({"finish-reason": "SUCCESS", "content-type": "image/png"}, PNG, "png")
    assert ok.content_type == "image/png"
    cases = [
        ({"finish-reason": "CONTENT_FILTERED", "content-type": "image/png"}, PNG, "client_error"),
        ({"finish-reason": "ERROR", "content-type": "image/png"}, PNG, "server"),
        ({"content-type": "application/json"}, b"{}", "server"),
        ({"content-type": "image/png"}, b"not a png", "server"),
    ]
    for headers, body, kind in cases:
        with pytest.raises(UpstreamError) as caught:
            parse_image_reply(headers, body, "png")
        assert caught.value.kind == kind
    with pytest.raises(UpstreamError, match="image/png when jpeg"):
        parse_image_reply({"content-type": "image/jpeg"}, PNG, "jpeg")


@pytest.mark.parametrize(
    ("adapter", "options"),
    [
        (OpenAIImagesAdapter, {"image_sizes": ("big",)}),
        (OpenAIImagesAdapter, {"image_formats": ("gif",)}),
        (OpenAIImagesAdapter, {"image_max_n": 0}),
        (StabilityImagesAdapter, {"image_sizes": ("1000x300",)}),
        (StabilityImagesAdapter, {"image_strength": 2.0}),
    ],
)
def test_options_that_declare_the_impossible_fail_at_start(
    adapter: Any, options: dict[str, Any]
) -> None:
    settings = ProviderSettings(name="p", kind=adapter.kind, base_url="http://x", options=options)
    with pytest.raises(ValueError, match="provider p"):
        adapter(settings)
