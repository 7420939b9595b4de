"""Hostile clients against a real server: bodies (oversized, nested, broken), paths and file
names. Fixtures are in this folder's conftest.py, helpers in support.py; keys, tenants and
headers are test_keys_and_headers.py.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.contract.errors import MAX_LISTED_ISSUES
from gateway.http.body import MAX_JSON_DEPTH
from tests.api.abuse.support import (
    BODY_LIMIT,
    CHAT,
    CHAT_BODY,
    JSON_LINE,
    KEY_LINE,
    MUSIC,
    MUSIC_BODY,
    envelope,
    exchange,
    head_of,
    post_json,
    raw_envelope,
)
from tests.api.test_uploads import tone_wav
from tests.conftest import auth
from tests.fakes.server import UvicornServer

# --- bodies -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [CHAT, MUSIC])
def test_oversized_bodies_are_refused_declared_or_chunked(server: UvicornServer, path: str) -> None:
    # Declared: the answer comes before a single body byte is sent.
    raw = exchange(
        server, head_of("POST", path.encode(), KEY_LINE, JSON_LINE, length=BODY_LIMIT + 1)
    )
    raw_envelope(raw, 413, "payload_too_large")
    # Chunked: counted as it arrives, refused as it passes the limit.
    piece = b"%x\r\n" % 65536 + b" " * 65536 + b"\r\n"
    chunked = head_of("POST", path.encode(), KEY_LINE, JSON_LINE, b"Transfer-Encoding: chunked")
    raw_envelope(exchange(server, chunked, piece * 20 + b"0\r\n\r\n"), 413, "payload_too_large")


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def test_deeply_nested_json_is_400_in_bounded_time(server: UvicornServer) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    started = time.monotonic()
    raw = b'{"model": "local-chat", "messages": [{"role": "user", "content": ' + deep + b"}]}"
    assert envelope(post_json(server, CHAT, raw), 400, "invalid_request")["param"] == "body"
    assert time.monotonic() - started < 2.0
    # Deep enough to parse (orjson reads 1024 levels) but too deep to write back (254): refused
    # up front, with or without an Idempotency-Key, instead of a 500 at the fingerprint or at
    # the provider call.
    for headers in (auth(), {**auth(), "idempotency-key": f"deep-{uuid.uuid4()}"}):
        for field in ("metadata", "tools", "response_format", "anything_else"):
            body = {**CHAT_BODY, field: {"a": nested(300)}}
            response = httpx.post(server.url + CHAT, json=body, headers=headers)
            assert envelope(response, 400, "invalid_request")["param"] == "body"
    fits = {**CHAT_BODY, "metadata": {"a": nested(MAX_JSON_DEPTH - 2)}}
    assert httpx.post(server.url + CHAT, json=fits, headers=auth()).status_code == 200


def test_a_body_with_countless_problems_gets_a_short_answer(server: UvicornServer) -> None:
    parts = b"[" + b",".join([b"1"] * 300_000) + b"]"
    bad_parts = b'{"model": "local-chat", "messages": [{"role": "user", "content": ' + parts
    bad_keys = b"{" + b",".join(b'"k%d": 0' % i for i in range(60_000)) + b', "model": "x"}'
    for path, raw in [(CHAT, bad_parts + b"}]}"), (MUSIC, bad_keys)]:
        response = post_json(server, path, raw)
        details = envelope(response, 400, "invalid_request")["details"]
        assert len(details) == MAX_LISTED_ISSUES + 1 and len(response.content) < 5000
        assert details[-1] == {"field": "body", "issue": "more problems not listed"}
    query = "&".join(f"p{i}" for i in range(5000))
    response = httpx.get(f"{server.url}/v1/tasks?{query}", headers=auth())
    assert len(envelope(response, 400, "invalid_request")["details"]) == MAX_LISTED_ISSUES + 1


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "local-chat", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
        b'{"model": "local-chat", "messages": [{"role": "user", "content": "\\ud800"}]}',
        b'{"model": "local-chat", "messages": [{"role": "user", "content": "a\x00b"}]}',
        b'{"model": "local-chat\x00", "messages": []}',
        b'{"model": "local-chat", "temperature": NaN, "messages": []}',
        b'{"model": "local-chat", "temperature": Infinity, "messages": []}',
        b'{"model": "local-chat", "temperature": -Infinity, "messages": []}',
        b'{"model": "local-chat", "temperature": 1e400, "messages": []}',
        b"\xef\xbb\xbf{}",
        b"",
    ],
)
def test_bodies_that_are_not_json_are_400(server: UvicornServer, raw: bytes) -> None:
    for path in (CHAT, MUSIC):
        assert envelope(post_json(server, path, raw), 400, "invalid_request")["param"] == "body"


def test_nul_escapes_huge_numbers_and_duplicate_keys(server: UvicornServer) -> None:
    nul = {**CHAT_BODY, "messages": [{"role": "user", "content": "nul \u0000 inside"}]}
    assert post_json(server, CHAT, orjson.dumps(nul)).status_code == 200
    unknown = post_json(server, CHAT, orjson.dumps({**CHAT_BODY, "model": "a\u0000b"}))
    assert "\x00" not in envelope(unknown, 404, "model_not_found")["message"]
    # Integers past 64 bits are written as literals (orjson reads them as floats).
    for path, field, literal in [
        (CHAT, "temperature", "1e308"),
        (CHAT, "top_p", "-1e308"),
        (CHAT, "max_tokens", "1" + "0" * 30),
        (CHAT, "seed", str(2**64)),
        (CHAT, "n", "-" + "9" * 20),
        (MUSIC, "duration_seconds", "1e308"),
        (MUSIC, "seed", str(2**32)),
        (MUSIC, "seed", str(-(2**63))),
    ]:
        base = CHAT_BODY if path == CHAT else MUSIC_BODY
        raw = orjson.dumps({**base, field: 0}).replace(b":0}", f":{literal}}}".encode())
        assert envelope(post_json(server, path, raw), 400, "invalid_request")["param"] == field
    assert post_json(server, CHAT, orjson.dumps({**CHAT_BODY, "seed": 2**64 - 1})).is_success
    # Duplicate keys: the last one wins, for validation and routing alike.
    duplicate = b'{"model": "nope", "model": "local-chat", "messages": [{"role": "user", '
    assert (
        post_json(server, CHAT, duplicate + b'"content": "hi"}]}').json()["model"] == "local-chat"
    )
    music = {**MUSIC_BODY, "prompt": "nul \u0000 prompt"}
    assert post_json(server, MUSIC, orjson.dumps(music)).status_code == 202


# --- paths and file names ---------------------------------------------------------


def upload(server: UvicornServer, filename: bytes) -> httpx.Response:
    part = b'Content-Disposition: form-data; name="file"; filename="' + filename + b'"'
    body = b"--b0\r\n" + part + b"\r\n\r\n" + tone_wav(0.05) + b"\r\n--b0--\r\n"
    headers = {**auth(), "content-type": "multipart/form-data; boundary=b0"}
    return httpx.post(server.url + "/v1/uploads", content=body, headers=headers, timeout=10)


@pytest.mark.parametrize(
    "filename",
    [
        b"../../evil.wav",
        b"..\\..\\evil.wav",
        b"/etc/evil.wav",
        b"C:\\Windows\\evil.wav",
        b"..%2F..%2Fevil.wav",
        b"evil.wav\x00.txt",
        b"\xff\xfe\xc3(.wav",
        b"\xe2\x80\xaeevil\xe2\x80\xac.wav",
        b"..",
        b"",
    ],
)
def test_upload_names_never_choose_where_the_file_lands(
    server: UvicornServer, storage: Path, filename: bytes
) -> None:
    response = upload(server, filename)
    assert response.status_code == 200, response.text
    record = response.json()
    assert (storage / record["artifact_id"]).is_file()
    assert not set(record["filename"]) & set("/\\\x00") and record["filename"] not in ("", "..")
    assert not list(storage.parent.rglob("evil*")) and not Path("/etc/evil.wav").exists()
    assert all(p.name.startswith(("art_", ".partial-")) for p in storage.iterdir())
    url = f"{server.url}/v1/artifacts/{record['artifact_id']}/content"
    disposition = httpx.get(url, headers=auth()).headers["content-disposition"]
    assert disposition.isascii() and "\r" not in disposition and "\n" not in disposition


@pytest.mark.parametrize(
    "path",
    [
        b"/v1/artifacts/..%2F..%2Fetc%2Fpasswd/content",
        b"/v1/artifacts/%2e%2e/content",
        b"/v1/artifacts/../../etc/passwd",
        b"/v1/artifacts/art_%00/content",
        b"/v1/artifacts/%2Fetc%2Fpasswd/content",
        b"/v1/artifacts/..%5C..%5Cwindows%5Cwin.ini/content",
        b"/v1/artifacts/art_0000000000000000000000000%2F/content",
        b"/v1/tasks/..%2F..%2Fetc%2Fpasswd",
        b"/v1/tasks/task_%00",
    ],
)
def test_traversal_in_artifact_and_task_ids_is_not_found(
    server: UvicornServer, path: bytes
) -> None:
    raw = exchange(server, head_of("GET", path, KEY_LINE))
    raw_envelope(raw, 404, "not_found")
    assert b"root:" not in raw
