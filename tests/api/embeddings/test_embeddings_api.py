"""``POST /v1/embeddings`` through the official SDK and raw HTTP: the wire format (against
OpenAI's own schemas), every form of ``input``, both encodings, ``dimensions``, routing by the
``embeddings`` capability, and the contract's envelope for every bad input."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from jsonschema import Draft202012Validator
from openai._extras import has_numpy

from tests.api.embeddings.conftest import embed
from tests.conftest import DEV_KEY, Upstream, auth
from tests.fakes.openai_upstream import fake_vector
from tests.fakes.server import UvicornServer

REFERENCE = Path(__file__).resolve().parents[2] / "reference" / "openai_embedding_schemas.json"


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(REFERENCE.read_text())["schemas"][name])


def client(server: UvicornServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=DEV_KEY, max_retries=0)


def floats(encoded: str) -> list[float]:
    raw = base64.b64decode(encoded)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


@pytest.mark.parametrize("model", ["embed-test", "local-embed"])
@pytest.mark.parametrize(
    "given",
    ["one text", ["two", "texts"], [1212, 318, 257], [[1212, 318], [257]]],
    ids=["string", "strings", "tokens", "token-arrays"],
)
def test_every_input_form_answers_openai_s_schema(
    embed_gateway: UvicornServer, model: str, given: Any
) -> None:
    body = {"model": model, "input": given, "user": "user-1"}
    assert [e.message for e in validator("CreateEmbeddingRequest").iter_errors(body)] == []
    response = embed(embed_gateway, body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert [e.message for e in validator("CreateEmbeddingResponse").iter_errors(answer)] == []
    count = 1 if isinstance(given, str) or isinstance(given[0], int) else len(given)
    assert [item["index"] for item in answer["data"]] == list(range(count))
    assert answer["model"] == model
    assert answer["usage"]["prompt_tokens"] == answer["usage"]["total_tokens"] > 0


def test_the_upstream_gets_its_own_model_id_and_the_answer_is_the_upstream_s_vectors(
    embed_gateway: UvicornServer, openai_fake: Upstream
) -> None:
    answer = embed(embed_gateway, {"model": "embed-test", "input": ["a b c", "d"]}).json()
    sent = openai_fake.plan.requests[-1]
    assert sent.path == "/v1/embeddings" and sent.body["model"] == "upstream-embed"
    assert [d["embedding"] for d in answer["data"]] == [fake_vector("a b c"), fake_vector("d")]
    assert answer["usage"] == {"prompt_tokens": 4, "total_tokens": 4}  # the fake's own count


@pytest.mark.parametrize("model", ["embed-test", "local-embed"])
def test_the_sdk_gets_the_same_vectors_as_float_as_base64_and_by_default(
    embed_gateway: UvicornServer, openai_fake: Upstream, model: str
) -> None:
    # Without encoding_format the SDK asks base64 and decodes it itself: with numpy when it is
    # installed, else (as in this suite, which does not install numpy) with the array module.
    assert not has_numpy()
    sdk = client(embed_gateway)
    texts = ["first text", "second text"]
    as_float = sdk.embeddings.create(model=model, input=texts, encoding_format="float")
    as_base64 = sdk.embeddings.create(model=model, input=texts, encoding_format="base64")
    default = sdk.embeddings.create(model=model, input=texts)  # the SDK asks base64, decodes it
    assert as_float.model == as_base64.model == default.model == model
    vectors = [item.embedding for item in as_float.data]
    assert all(isinstance(x, float) for x in vectors[0])
    assert [floats(item.embedding) for item in as_base64.data] == vectors  # type: ignore[arg-type]
    assert [item.embedding for item in default.data] == vectors
    if model == "embed-test":  # the upstream was asked for what the client asked for
        formats = [r.body.get("encoding_format") for r in openai_fake.plan.requests]
        assert formats == ["float", "base64", "base64"]


def test_dimensions_shorten_the_offline_vectors_by_truncating_and_renormalising(
    embed_gateway: UvicornServer,
) -> None:
    sdk = client(embed_gateway)
    full = sdk.embeddings.create(model="local-embed", input="a quiet lake at dawn").data[0]
    short = sdk.embeddings.create(
        model="local-embed", input="a quiet lake at dawn", dimensions=32
    ).data[0]
    assert len(full.embedding) == 256 and len(short.embedding) == 32
    head = full.embedding[:32]
    norm = sum(x * x for x in head) ** 0.5
    assert short.embedding == pytest.approx([x / norm for x in head], abs=1e-6)
    assert sum(x * x for x in short.embedding) == pytest.approx(1.0, abs=1e-5)


def test_auto_and_aliases_pick_only_models_that_embed(
    embed_gateway: UvicornServer, openai_fake: Upstream
) -> None:
    auto = embed(embed_gateway, {"model": "auto", "input": "x"}).json()
    assert auto["model"] == "embed-test"  # local-chat, first in routing.auto, cannot embed
    openai_fake.plan.push("status", status=503, times=2)
    assert embed(embed_gateway, {"model": "auto", "input": "x"}).json()["model"] == "local-embed"
    alias = embed(embed_gateway, {"model": "text-embedding-3-small", "input": "x"}).json()
    assert alias["model"] == "local-embed"
    # Asking more dimensions than embed-test declares leaves only local-embed in auto's plan.
    wide = embed(embed_gateway, {"model": "auto", "input": "x", "dimensions": 64}).json()
    assert wide["model"] == "local-embed" and len(wide["data"][0]["embedding"]) == 64


def test_models_advertise_the_embeddings_capability(embed_gateway: UvicornServer) -> None:
    listed = httpx.get(embed_gateway.url + "/v1/models", headers=auth()).json()["data"]
    capabilities = {model["id"]: model["capabilities"] for model in listed}
    assert capabilities["local-embed"] == ["embeddings"]
    assert capabilities["embed-test"] == ["embeddings"]
    assert "embeddings" in capabilities["auto"]
    assert "embeddings" not in capabilities["local-chat"]


def bad(**fields: Any) -> dict[str, Any]:
    return {"model": "local-embed", "input": "text", **fields}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "local-embed"}, "input"),
        (bad(input=""), "input"),
        (bad(input=[]), "input"),
        (bad(input=["fine", ""]), "input[1]"),
        (bad(input=[[1, 2], []]), "input[1]"),
        (bad(input=["x"] * 2049), "input"),
        (bad(input=list(range(2049))), "input"),
        (bad(input=["text", 3]), "input[1]"),
        (bad(input=[1, "two"]), "input"),
        (bad(input=[1, -2]), "input"),
        (bad(input=[True]), "input"),
        (bad(input=[[1], "x"]), "input[1]"),
        (bad(input=[None]), "input[0]"),
        (bad(input={"text": "x"}), "input"),
        (bad(input=7), "input"),
        (bad(model=""), "model"),
        (bad(model=["local-embed"]), "model"),
        (bad(encoding_format="float16"), "encoding_format"),
        (bad(encoding_format=1), "encoding_format"),
        (bad(dimensions=0), "dimensions"),
        (bad(dimensions=1.5), "dimensions"),
        (bad(dimensions=True), "dimensions"),
        (bad(dimensions=257), "dimensions"),
        (bad(model="embed-test", dimensions=9), "dimensions"),
        (bad(user=5), "user"),
        (bad(model="local-chat"), "model"),
    ],
)
def test_bad_input_is_the_envelope_naming_the_field(
    embed_gateway: UvicornServer, openai_fake: Upstream, body: dict[str, Any], field: str
) -> None:
    response = embed(embed_gateway, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and error["type"] == "invalid_request_error"
    assert error["param"] == field and error["details"][0]["field"] == field
    assert error["request_id"] == response.headers["x-request-id"]
    assert openai_fake.plan.calls == 0


def test_unknown_models_and_keys_get_their_envelopes(embed_gateway: UvicornServer) -> None:
    missing = embed(embed_gateway, {"model": "nope", "input": "x"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    keyless = httpx.post(embed_gateway.url + "/v1/embeddings", json={"model": "auto"})
    assert keyless.status_code == 401
    with pytest.raises(openai.BadRequestError) as raised:
        client(embed_gateway).embeddings.create(model="local-chat", input="x")
    assert raised.value.code == "invalid_request"


def test_openapi_describes_the_route_and_both_encodings_of_its_answer(
    embed_gateway: UvicornServer,
) -> None:
    spec = httpx.get(embed_gateway.url + "/openapi.json").json()
    operation = spec["paths"]["/v1/embeddings"]["post"]
    request = operation["requestBody"]["content"]["application/json"]["schema"]
    answer = Draft202012Validator(
        operation["responses"]["200"]["content"]["application/json"]["schema"]
    )
    body = {"model": "local-embed", "input": ["a", "b"]}
    assert list(Draft202012Validator(request).iter_errors(body)) == []
    for encoding_format in ("float", "base64"):
        given = embed(embed_gateway, {**body, "encoding_format": encoding_format}).json()
        assert [e.message for e in answer.iter_errors(given)] == []
    assert list(Draft202012Validator(request).iter_errors({**body, "input": []}))
