"""``POST /v1/images/generations`` through the official SDK and raw httpx, on the offline model.

Answers validate against OpenAI's ``ImagesResponse`` (tests/reference/), the images decode at the
asked size and format, a ``url`` is the gateway's own owner-only artifact, and the route keeps
the pipeline's promises: the envelope for every refusal, Idempotency-Key, rate limits, metrics
and the access log.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from tests.api.images.support import decode, images_response, reference, sdk
from tests.conftest import (
    SECOND_KEY,
    CapturedLogs,
    GatewayFactory,
    auth,
    base_config,
    wait_until,
)
from tests.fakes.server import UvicornServer

ROUTE = "/v1/images/generations"
PROMPT = "a red sun over blue mountains, my private words"


def image_config(**keys: dict[str, Any]) -> dict[str, Any]:
    config = base_config()
    config["models"]["local-image"] = {
        "provider": "local",
        "model": "local-image-1",
        "capabilities": ["image.text", "image.edit"],
        "status": "preview",
    }
    config["routing"] = {"auto": ["local-chat", "local-image"]}
    for name, extra in keys.items():
        config["keys"][name] = {**config["keys"][name], **extra}
    return config


@pytest.fixture
def server(gateway_factory: GatewayFactory) -> UvicornServer:
    return gateway_factory(image_config())


def post(server: UvicornServer, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(server.url + ROUTE, json=body, headers={**auth(), **headers}, timeout=30)


def test_sdk_generate_b64_json_decodes_at_the_asked_size_and_format(
    server: UvicornServer,
) -> None:
    answer = sdk(server).images.generate(
        model="local-image",
        prompt=PROMPT,
        size="1536x1024",
        output_format="webp",
        response_format="b64_json",
        n=2,
    )
    assert answer.data is not None and len(answer.data) == 2
    images = [base64.b64decode(item.b64_json or "") for item in answer.data]
    assert images[0] != images[1]
    for data in images:
        image = decode(data)
        assert (image.format, image.size) == ("WEBP", (1536, 1024))
    assert answer.output_format == "webp"
    assert (answer.data[0].revised_prompt or "").startswith(PROMPT)


def test_sdk_generate_url_points_at_an_owner_only_artifact(server: UvicornServer) -> None:
    answer = sdk(server).images.generate(
        model="auto", prompt="a teal ocean", size="256x256", response_format="url"
    )
    assert answer.data is not None
    url = answer.data[0].url or ""
    assert url.startswith(server.url + "/v1/artifacts/art_") and url.endswith("/content")
    mine = httpx.get(url, headers=auth(), timeout=10)
    assert mine.status_code == 200 and mine.headers["content-type"] == "image/png"
    assert decode(mine.content).size == (256, 256)
    assert httpx.get(url, headers=auth(SECOND_KEY), timeout=10).status_code == 404
    assert httpx.get(url, timeout=10).status_code == 401
    record = httpx.get(url.removesuffix("/content"), headers=auth(), timeout=10).json()
    assert record["kind"] == "output" and record["content_type"] == "image/png"


@pytest.mark.parametrize("response_format", ["b64_json", "url"])
def test_requests_and_answers_validate_against_openai_schemas(
    server: UvicornServer, response_format: str
) -> None:
    body = {
        "model": "local-image",
        "prompt": "a pastel grid of flowers",
        "size": "512x512",
        "quality": "low",
        "output_format": "jpeg",
        "response_format": response_format,
        "n": 1,
    }
    assert list(reference("CreateImageRequest").iter_errors(body)) == []
    response = post(server, body)
    assert response.status_code == 200, response.text
    answer = response.json()
    images_response(answer)
    assert set(answer["data"][0]) == {response_format, "revised_prompt"}


def test_the_same_seed_gives_the_same_bytes_through_the_gateway(server: UvicornServer) -> None:
    client = sdk(server)

    def generate(seed: int) -> str:
        answer = client.images.generate(
            model="local-image", prompt=PROMPT, size="256x256", extra_body={"seed": seed}
        )
        assert answer.data is not None
        return answer.data[0].b64_json or ""

    assert generate(11) == generate(11)
    assert generate(11) != generate(12)


def test_models_advertise_the_image_capabilities(server: UvicornServer) -> None:
    model = sdk(server).models.retrieve("local-image")
    assert model.model_extra is not None
    assert model.model_extra["capabilities"] == ["image.text", "image.edit"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "local-image", "prompt": "x", "size": "999x999"}, "size"),
        ({"model": "local-image", "prompt": "x", "n": 5}, "n"),
        ({"model": "local-image", "prompt": "x", "n": 11}, "n"),
        ({"model": "local-image", "prompt": "   "}, "prompt"),
        ({"model": "local-image", "prompt": "x", "output_format": "gif"}, "output_format"),
        (
            {
                "model": "local-image",
                "prompt": "x",
                "background": "transparent",
                "output_format": "jpeg",
            },
            "background",
        ),
        ({"model": "local-image", "prompt": "x", "stream": True}, "stream"),
        ({"model": "local-image", "prompt": "x", "strength": 0.5}, "strength"),
        ({"model": "local-image", "prompt": "x", "colour": "red"}, "colour"),
        ({"model": "local-chat", "prompt": "x"}, "model"),
    ],
)
def test_a_request_no_model_can_serve_is_a_400_naming_the_field(
    server: UvicornServer, body: dict[str, Any], field: str
) -> None:
    response = post(server, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert field in [detail["field"] for detail in error["details"]]


def test_an_unknown_model_is_404_and_a_bad_body_400(server: UvicornServer) -> None:
    assert post(server, {"model": "nope", "prompt": "x"}).status_code == 404
    headers = {**auth(), "content-type": "application/json"}
    raw = httpx.post(server.url + ROUTE, content=b"[", headers=headers, timeout=10)
    assert raw.status_code == 400 and raw.json()["error"]["code"] == "invalid_request"


def test_idempotency_key_replays_the_answer_without_painting_again(server: UvicornServer) -> None:
    body = {"model": "local-image", "prompt": "stars", "size": "256x256", "n": 2}
    first = post(server, body, **{"idempotency-key": "img-1"})
    again = post(server, body, **{"idempotency-key": "img-1"})
    assert first.status_code == again.status_code == 200
    assert first.content == again.content
    assert again.headers.get("idempotent-replayed") == "true"
    other = post(server, {**body, "prompt": "moons"}, **{"idempotency-key": "img-1"})
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_conflict"
    metrics = httpx.get(server.url + "/metrics", timeout=10).text
    assert 'beatra_images_total{kind="generation",model="local-image"} 2.0' in metrics


def test_each_image_request_counts_against_the_rate_limit(
    gateway_factory: GatewayFactory,
) -> None:
    server = gateway_factory(image_config(dev={"rpm": 1}))
    body = {"model": "local-image", "prompt": "x", "size": "256x256"}
    assert post(server, body).status_code == 200
    limited = post(server, body)
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"


def test_one_access_line_names_the_model_and_not_the_prompt(
    server: UvicornServer, logs: CapturedLogs
) -> None:
    response = post(server, {"prompt": PROMPT, "size": "256x256"}, **{"x-request-id": "img-log"})
    assert response.status_code == 200

    def lines() -> list[dict[str, Any]]:
        return [line for line in logs.lines() if line.get("request_id") == "img-log"]

    wait_until(lambda: len(lines()) == 1)
    (line,) = lines()
    assert line["route"] == ROUTE and line["model"] == "auto"
    assert line["model_served"] == "local-image" and line["provider"] == "local"
    assert PROMPT not in logs.text()
