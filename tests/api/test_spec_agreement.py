"""The served ``/openapi.json`` and the validators agree: a body the spec allows is never a 400,
and one it forbids is, including the cross-field and catalog rules a generated client relies on.

Each case is checked both ways against a real gateway on the offline models (local music
limited to 5 s and WAV, as in the fuzz test).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest

from gateway.contract.schemas_music import NOT_ONLY_SPACE
from tests.api.abuse.support import serve
from tests.conftest import auth, base_config
from tests.fakes.audio import tone_wav
from tests.fakes.images import image_bytes
from tests.fakes.server import UvicornServer

USER = [{"role": "user", "content": "Hi"}]
CHAT = {"model": "local-chat", "messages": USER}
MUSIC = {"model": "local-music", "prompt": "piano", "duration_seconds": 2}
TASK_ID = "task_" + "0" * 26


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UvicornServer]:
    config = base_config()
    config["providers"]["local"]["options"] = {"max_duration_seconds": 5}
    config["models"]["no-stream"] = {"provider": "local", "model": "l", "capabilities": ["chat"]}
    config["models"]["only-stream"] = {
        "provider": "local",
        "model": "l",
        "capabilities": ["chat.stream"],
    }
    config["storage"] = {"path": str(tmp_path_factory.mktemp("agreement-artifacts"))}
    gateway = serve(config)
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def spec(server: UvicornServer) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(server.url + "/openapi.json").json()
    return document


def body_schema(spec: dict[str, Any], path: str) -> jsonschema.Draft202012Validator:
    content = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    return jsonschema.Draft202012Validator(content["schema"])


@pytest.mark.parametrize(
    ("extra", "allowed"),
    [
        ({"temperature": 0.5, "top_p": 0.5}, False),
        ({"temperature": 0.5, "top_p": 1}, True),
        ({"temperature": 1, "top_p": 0.2}, True),
        ({"stream_options": {"include_usage": True}}, False),
        ({"stream_options": {"include_usage": True}, "stream": True}, True),
        ({"stream_options": None}, True),
        ({"max_tokens": 5.0, "n": 1.0, "seed": 3.0}, True),
        ({"max_tokens": 5.5}, False),
        ({"model": ""}, False),
        ({"model": "local-music"}, False),  # a music model cannot chat
        ({"model": "local-music", "stream": True}, False),
        ({"model": "no-stream"}, True),
        ({"model": "no-stream", "stream": True}, False),
        ({"model": "only-stream", "stream": True}, True),
        ({"model": "only-stream", "stream": False}, False),
        ({"messages": [{"role": "tool", "content": "x"}]}, False),
        ({"messages": [{"role": "user"}]}, False),
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, False),
        ({"top_logprobs": 21}, False),
        ({"parallel_tool_calls": "yes"}, False),
    ],
)
def test_chat_bodies(
    server: UvicornServer, spec: dict[str, Any], extra: dict[str, Any], allowed: bool
) -> None:
    body = {**CHAT, **extra}
    assert body_schema(spec, "/v1/chat/completions").is_valid(body) is allowed
    response = httpx.post(f"{server.url}/v1/chat/completions", json=body, headers=auth())
    assert (response.status_code == 200) is allowed, response.text
    assert response.status_code in (200, 400)


@pytest.mark.parametrize(
    ("extra", "allowed"),
    [
        ({"model": ""}, False),
        ({"model": "local-chat"}, False),  # a chat model cannot make music
        ({"prompt": "\x1f \u3000"}, False),  # only whitespace, as str.strip() sees it
        ({"prompt": "\ufeff"}, True),
        ({"instrumental": True, "lyrics": "la la"}, False),
        ({"instrumental": True, "lyrics": ""}, True),
        ({"reference_mode": "melody"}, False),
        ({"reference_strength": None}, True),
        ({"duration_seconds": 5}, True),
        ({"duration_seconds": 6}, False),  # local-music renders at most 5 s here
        ({"format": "WAV"}, True),
        ({"format": "mp3"}, False),  # local renders WAV only
        ({"seed": 7.0}, True),
        ({"reference_artifact_id": ""}, False),
    ],
)
def test_music_bodies(
    server: UvicornServer, spec: dict[str, Any], extra: dict[str, Any], allowed: bool
) -> None:
    body = {**MUSIC, **extra}
    assert body_schema(spec, "/v1/music/generations").is_valid(body) is allowed
    response = httpx.post(f"{server.url}/v1/music/generations", json=body, headers=auth())
    assert (response.status_code == 202) is allowed, response.text
    assert response.status_code in (202, 400)


def test_the_default_duration_is_required_to_be_short_enough(
    server: UvicornServer, spec: dict[str, Any]
) -> None:
    body = {"model": "local-music", "prompt": "piano"}  # 10 s by default, over the 5 s limit
    assert not body_schema(spec, "/v1/music/generations").is_valid(body)
    response = httpx.post(f"{server.url}/v1/music/generations", json=body, headers=auth())
    assert response.status_code == 400


@pytest.mark.parametrize(("after", "allowed"), [("", False), ("x", False), (TASK_ID, True)])
def test_task_cursor(
    server: UvicornServer, spec: dict[str, Any], after: str, allowed: bool
) -> None:
    (parameter,) = [
        p for p in spec["paths"]["/v1/tasks"]["get"]["parameters"] if p["name"] == "after"
    ]
    assert jsonschema.Draft202012Validator(parameter["schema"]).is_valid(after) is allowed
    response = httpx.get(f"{server.url}/v1/tasks", params={"after": after}, headers=auth())
    assert (response.status_code == 200) is allowed, response.text


def test_uploads_name_exactly_the_media_types_they_accept(
    server: UvicornServer, spec: dict[str, Any]
) -> None:
    media = spec["paths"]["/v1/uploads"]["post"]["requestBody"]["content"]["multipart/form-data"]
    types = [t.strip() for t in media["encoding"]["file"]["contentType"].split(",")]
    assert "audio/wav" in types and "image/png" in types and "image/gif" not in types
    gif = b"GIF89a" + bytes(32)
    for data, status in ((gif, 415), (tone_wav(), 200), (image_bytes("PNG"), 200)):
        files = {"file": ("x", data, "application/octet-stream")}
        response = httpx.post(f"{server.url}/v1/uploads", files=files, headers=auth())
        assert response.status_code == status, response.text
        if status == 200:
            assert response.json()["content_type"] in types


def test_the_prompt_pattern_is_pythons_whitespace_in_every_engine() -> None:
    pattern = re.compile(NOT_ONLY_SPACE)
    for code in range(0x3001):
        character = chr(code)
        assert (pattern.search(character) is None) is character.isspace(), hex(code)
