"""The whole API from its own spec: schemathesis fuzzing, and sweeps over fields and methods.

One gateway runs under uvicorn on the offline ``local`` provider (chat and music need no
network) with fast task polling. Schemathesis takes the spec that gateway serves and sends,
for every operation and with the development key, the schema's examples, the coverage phase's
boundary and negative values, and a bounded number of random positive and negative cases.
Every answer must:

- never be a 5xx;
- for a request the spec allows, never be a 400, 415 or 416 (positive_data_acceptance: the spec
  states what the validators enforce, cross-field and per-model rules included);
- conform to the spec: a documented status and content type, a body matching the schema of
  that status, the documented response headers;
- when it is not a 2xx, be the contract's envelope: a known code with its status, type and
  ``retryable``, a message, ``details``, and ``request_id`` equal to ``X-Request-Id``.

Two things JSON Schema cannot state are supplied here: catalog model names for valid bodies
(the spec only says which names a body may not use), and the first bytes of each accepted audio
type for uploads (the spec names the types). A failure prints the case as a curl command. The
run is seeded: ``BEATRA_FUZZ_SEED=<n>`` replays or varies it, ``BEATRA_FUZZ_EXAMPLES=<n>``
widens it (the default keeps the file well under a minute on two cores).

Deterministic sweeps derived from the same spec and route table follow: every body field with
every wrong JSON type, bad query strings and Range headers, and every method on every route.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode

from gateway.app import create_app
from gateway.artifacts.media import IMAGE_TYPES
from gateway.config.settings import settings_from_dict
from gateway.contract.errors import ERROR_CODES
from gateway.contract.openapi import build_openapi
from gateway.contract.schemas_music import AUDIO_TYPES
from tests.api.abuse.support import serve
from tests.api.fuzz_setup import CATALOG, fuzz_config, schemathesis_config
from tests.conftest import DEV_KEY, TEST_ENV, auth, wait_until
from tests.fakes.audio import tone_wav
from tests.fakes.images import image_bytes
from tests.fakes.server import UvicornServer


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UvicornServer]:
    server = serve(fuzz_config(str(tmp_path_factory.mktemp("fuzz-artifacts"))))
    yield server
    server.stop()


# The spec is needed when tests are collected, before any server runs, so it is built from the
# same configuration without starting anything (the storage path is never touched); the first
# test proves it is exactly what the running gateway serves.
SPEC = build_openapi(create_app(settings_from_dict(fuzz_config("unused"), TEST_ENV)).routes)
schema = schemathesis.openapi.from_dict(SPEC, config=schemathesis_config())


def test_the_fuzzed_spec_is_the_one_the_gateway_serves(fuzz_server: UvicornServer) -> None:
    served = httpx.get(fuzz_server.url + "/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.json() == SPEC


# The bytes of each audio type the upload schema names (its multipart encoding): JSON Schema can
# say which types are accepted, not what their first bytes are, so the generator is told here.
AUDIO_HEADS = {
    "audio/wav": tone_wav(0.01),
    "audio/flac": b"fLaC\x00\x00\x00\x22",
    "audio/ogg": b"OggS\x00\x02",
    "audio/mpeg": b"ID3\x04\x00\x00",
    "audio/aiff": b"FORM\x00\x00\x00\x04AIFF",
    "audio/mp4": b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00",
    "audio/aac": b"\xff\xf1\x50\x80\x02\x1f\xfc",
}
assert set(AUDIO_HEADS) == set(AUDIO_TYPES)
# And of each image type: a whole small image (the header's dimensions are read and checked).
IMAGE_HEADS = {
    "image/png": image_bytes("PNG"),
    "image/jpeg": image_bytes("JPEG"),
    "image/webp": image_bytes("WEBP"),
}
assert set(IMAGE_HEADS) == set(IMAGE_TYPES)
for media, head in {**AUDIO_HEADS, **IMAGE_HEADS}.items():
    schemathesis.openapi.media_type(media, st.binary(max_size=32).map(head.__add__))


def _request_validator(method: str, path: str) -> jsonschema.Draft202012Validator:
    (media,) = SPEC["paths"][path][method]["requestBody"]["content"].values()
    return jsonschema.Draft202012Validator(media["schema"])


BODY_VALIDATORS = {
    path: _request_validator("post", path)
    for path in (
        "/v1/chat/completions",
        "/v1/responses",
        "/v1/music/generations",
        "/v1/embeddings",
        "/v1/images/generations",
        "/v1/images/edits",
    )
}


def _body_negative(case: schemathesis.Case[Any]) -> bool:
    """Whether the case's body (not just a header or the query) was generated to be invalid."""
    if case.meta is None:
        return False
    for location, info in case.meta.components.items():
        if getattr(location, "value", location) == "body":
            return bool(info.mode is GenerationMode.NEGATIVE)
    return bool(case.meta.generation.mode is GenerationMode.NEGATIVE)


@schema.hook
def flatmap_case(_context: schemathesis.HookContext, case: schemathesis.Case[Any]) -> Any:
    """Valid bodies also name real models, so valid requests reach the relay and the runner.

    Random strings are almost never a catalog id: without this every positive chat or music
    case would stop at ``model_not_found``. A catalog model is used only where the spec allows
    it for this body (a music model cannot chat, a 5-second model cannot render 10 seconds).
    Negative cases keep their broken model field.
    """
    body = case.body
    # The body's own mode: a case whose header is the negative part may carry a negative body
    # too (and the reverse), and only a positive body may be given a real model name.
    negative = _body_negative(case)
    validator = BODY_VALIDATORS.get(case.operation.path)
    if isinstance(body, dict) and any(isinstance(v, bytes | bytearray) for v in body.values()):
        # A form body with a file is left as drawn: once changed here, schemathesis validates it
        # again as JSON, where the file's bytes are no string, and would take it for negative.
        # Its model is often left out, which is auto.
        return st.just(case)
    if negative or not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return st.just(case)

    def named(model: str) -> schemathesis.Case[Any]:
        case.body = {**body, "model": model}
        return case

    assert validator is not None
    models = [str(body["model"])]
    models += [model for model in CATALOG if validator.is_valid({**body, "model": model})]
    return st.sampled_from(models).map(named)


def check_envelope(response: Any) -> None:
    """A non-2xx answer is the contract's envelope, naming the request id of its header."""
    if 200 <= response.status_code < 300:
        return
    request_id = response.headers.get("x-request-id")
    if isinstance(request_id, list):  # schemathesis keeps every value of a header
        (request_id,) = request_id
    error = response.json()["error"]
    spec = ERROR_CODES[error["code"]]
    assert spec.status == response.status_code, (error, response.status_code)
    assert isinstance(error["message"], str) and error["message"]
    assert (error["type"], error["retryable"]) == (spec.type, spec.retryable)
    assert error["request_id"] == request_id, (error, request_id)
    assert isinstance(error["details"], list)


@schema.parametrize()
def test_every_operation_conforms_to_the_spec(
    case: schemathesis.Case[Any], fuzz_server: UvicornServer
) -> None:
    check_envelope(case.call_and_validate(base_url=fuzz_server.url))


# --- deterministic sweeps ----------------------------------------------------------------------


def envelope(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert ERROR_CODES[error["code"]].status == status
    assert error["request_id"] == response.headers["x-request-id"]
    return error


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")
WRONG: list[Any] = [None, True, 0, -1, 1.5, "", "x" * 5000, [], [None], {}, {"a": []}]
VALID: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"model": "local-chat", "messages": [{"role": "user", "content": "x"}]},
    "/v1/music/generations": {"model": "local-music", "prompt": "piano", "duration_seconds": 1},
    "/v1/embeddings": {"model": "local-embed", "input": ["a", "b"]},
    "/v1/images/generations": {"model": "local-image", "prompt": "a red sun", "size": "256x256"},
}


@pytest.fixture(scope="module")
def artifact(fuzz_server: UvicornServer) -> dict[str, Any]:
    """The record of a generated song, from a finished music task of the dev key."""
    music = "/v1/music/generations"
    with httpx.Client(base_url=fuzz_server.url, headers=auth(), timeout=10) as client:
        task_id = client.post(music, json=VALID[music]).json()["task_id"]
        wait_until(lambda: client.get(f"/v1/tasks/{task_id}").json()["status"] == "succeeded")
        task = client.get(f"/v1/tasks/{task_id}").json()
        record: dict[str, Any] = client.get(
            f"/v1/artifacts/{task['result']['artifacts'][0]['artifact_id']}"
        ).json()
    return record


@pytest.mark.parametrize("path", sorted(VALID))
def test_every_body_field_with_every_wrong_type_is_4xx_never_5xx(
    fuzz_server: UvicornServer, path: str
) -> None:
    valid = VALID[path]
    fields = SPEC["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    bodies = [
        {**valid, name: value} for name in [*fields["properties"], "other"] for value in WRONG
    ]
    if "messages" in valid:
        messages = [{"role": "user", "content": value} for value in WRONG]
        messages += [{"role": value, "content": "x"} for value in WRONG]
        messages += [{"role": "user", "content": [value]} for value in WRONG]
        bodies += [{**valid, "messages": [message]} for message in messages]
    with httpx.Client(base_url=fuzz_server.url, headers=auth(), timeout=10) as client:
        for body in bodies:
            response = client.post(path, json=body)
            assert response.status_code < 500, (body, response.text)
            if response.status_code >= 400:
                envelope(response, response.status_code)


@pytest.mark.parametrize(
    "query",
    [
        "limit=abc",
        "limit=-1",
        "limit=1e3",
        "limit=" + "9" * 30,
        "limit=" + "9" * 5000,
        "limit=%C2%B2",
        "limit=%D9%A1%D9%A2",
        "limit=%00",
        "status=%FF%FE",
        "status=queued%00",
        "after=..%2F..%2Fetc",
        "type[]=music.text",
        "x" * 3000 + "=1",
    ],
)
def test_bad_query_strings_are_400_naming_the_parameter(
    fuzz_server: UvicornServer, query: str
) -> None:
    response = httpx.get(f"{fuzz_server.url}/v1/tasks?{query}", headers=auth())
    error = envelope(response, 400)
    assert error["details"] and all(len(d["field"]) <= 100 for d in error["details"])


@pytest.mark.parametrize(
    ("offered", "status"),
    [
        (b"bytes=0-" + b"9" * 5000, 206),
        (b"bytes=-" + b"9" * 5000, 206),
        (b"bytes=" + b"9" * 5000 + b"-", 416),
        (b"bytes=" + b"9" * 19 + b"-" + b"9" * 20, 416),
        (b"bytes=\xc2\xb2-", 200),
    ],
)
def test_range_headers_of_any_length_and_the_answers_conform_to_the_spec(
    fuzz_server: UvicornServer, artifact: dict[str, Any], offered: bytes, status: int
) -> None:
    content = schema["/v1/artifacts/{id}/content"]["GET"]
    case = content.Case(
        path_parameters={"id": artifact["artifact_id"]},
        # A case made by hand carries no generated auth. Latin-1 sends the very same bytes.
        headers={"Authorization": f"Bearer {DEV_KEY}", "Range": offered.decode("latin-1")},
    )
    response = case.call_and_validate(base_url=fuzz_server.url)  # status, headers, type
    assert response.status_code == status, response.text
    if status == 416:
        assert response.headers["content-range"] == [f"bytes */{artifact['bytes']}"]
    else:
        assert len(response.content) == artifact["bytes"]


def test_every_route_answers_every_method_with_the_envelope_or_a_real_head(
    fuzz_server: UvicornServer, artifact: dict[str, Any]
) -> None:
    with httpx.Client(base_url=fuzz_server.url, headers=auth(), timeout=10) as client:
        ids = {
            "/v1/models/{id}": "local-chat",
            "/v1/tasks/{id}": artifact["task_id"],
            "/v1/artifacts/{id}": artifact["artifact_id"],
            "/v1/responses/{id}": client.post(
                "/v1/responses", json={"model": "local-chat", "input": "hi"}
            ).json()["id"],
        }
        routes: dict[str, set[str]] = {}
        for route in create_app(settings_from_dict(fuzz_config("unused"), TEST_ENV)).routes:
            routes.setdefault(route.path, set()).add(route.method)
        for template, allowed in routes.items():
            path = template.replace("{id}", ids.get(template.partition("{id}")[0] + "{id}", ""))
            for method in sorted(set(METHODS) - allowed):
                response = client.request(method, path)
                if method == "HEAD" and "GET" in allowed:
                    whole = client.get(path)
                    assert response.status_code == whole.status_code == 200, path
                    assert response.content == b""
                    assert response.headers["content-type"] == whole.headers["content-type"]
                    if template != "/metrics":  # its counters move between the two calls
                        assert response.headers["content-length"] == str(len(whole.content))
                    continue
                assert response.status_code == 405, (method, path, response.text)
                assert response.headers["allow"] == ", ".join(sorted(allowed))
                if method != "HEAD":  # a HEAD answer has headers only
                    envelope(response, 405)
