"""Hostile clients against a real server: keys, tenants and headers.

Raw sockets send what httpx refuses to (control bytes in headers, unnormalised paths). Some bytes
never reach the gateway: uvicorn's httptools parser itself answers a request line or header it
cannot parse (CR, LF, NUL, DEL or other control bytes in a header value; an unknown method) with
a plain-text 400 and closes; the tests pin that down too. It sets no limit on header size,
though: the gateway's server protocol does, while parsing. Bodies, paths and file names are
``test_bodies_and_paths.py``; every method on every route, and bad query strings, are swept in
``test_fuzz.py``. Fixtures and helpers: this folder's conftest.py and support.py.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.config.settings import settings_from_dict
from gateway.http.request_head import MAX_HEADER_BYTES, MAX_HEADER_FIELDS
from gateway.policy.auth import KeyRing
from tests.api.abuse.support import (
    CHAT,
    CHAT_BODY,
    DISABLED_KEY,
    JSON_LINE,
    KEY_LINE,
    MUSIC,
    MUSIC_BODY,
    PARSER_REFUSAL,
    abuse_config,
    envelope,
    exchange,
    head_of,
    parse,
    raw_envelope,
    without_id,
)
from tests.conftest import DEV_KEY, SECOND_KEY, TEST_ENV, auth
from tests.fakes.server import UvicornServer

# --- keys ---------------------------------------------------------------------------------------


def test_keys_are_compared_in_constant_time_as_digests() -> None:
    tree = ast.parse(inspect.cleandoc("\n" + inspect.getsource(KeyRing.authenticate)))
    calls = {
        ast.unparse(node.func): [ast.unparse(arg) for arg in node.args]
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
    }
    assert calls["hashlib.sha256"] == ["token"], "the presented key is hashed first"
    assert calls["hmac.compare_digest"] == ["key.sha256", "digest"], "digests, in constant time"
    # No ``==`` on a secret or a digest anywhere on the path: it stops at the first difference.
    equalities = [
        ast.unparse(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.Compare)
        and any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops)
    ]
    assert not [text for text in equalities if "token" in text or "digest" in text], equalities
    keys = settings_from_dict(abuse_config(Path("unused")), TEST_ENV).keys
    assert keys["dev"].sha256 == hashlib.sha256(DEV_KEY.encode()).digest()
    assert all(DEV_KEY not in repr(key) for key in keys.values())  # only digests are kept


def test_wrong_keys_of_every_length_get_one_identical_answer(server: UvicornServer) -> None:
    wrong: list[bytes] = [b"k" * n for n in (1, 2, 8, 31, 32, 33, 64, 100, 1000, 8000)]
    near = [DEV_KEY[:-1], DEV_KEY + "x", DEV_KEY.upper(), DEV_KEY[:-1] + "X", SECOND_KEY[::-1]]
    wrong += [key.encode() for key in [*near, DISABLED_KEY, "dev", "second", "off"]]
    wrong += [b"\xc3\xa9t\xc3\xa9", b"\xff\xfe"]
    answers = []
    for key in wrong:
        headers = {b"authorization": b"Bearer " + key}
        response = httpx.get(server.url + "/v1/models", headers=headers, timeout=10)
        answers.append(without_id(response))
        envelope(response, 401, "invalid_api_key")
    # A disabled key, a near miss and garbage are indistinguishable: nothing about the presented
    # key, nor about configured keys or their names, is in the answer.
    assert all(answer == answers[0] for answer in answers), answers
    assert "dev" not in str(answers[0]) and "second" not in str(answers[0])


# --- tenants ------------------------------------------------------------------------------------


def test_another_tenants_tasks_and_artifacts_are_invisible(
    server: UvicornServer, dev_task: dict[str, Any]
) -> None:
    task_id = dev_task["task_id"]
    artifact_id = dev_task["result"]["artifacts"][0]["artifact_id"]
    never_task, never_artifact = "task_" + "0" * 26, "art_" + "0" * 26
    for mine, never in [
        (f"/v1/tasks/{task_id}", f"/v1/tasks/{never_task}"),
        (f"/v1/artifacts/{artifact_id}", f"/v1/artifacts/{never_artifact}"),
        (f"/v1/artifacts/{artifact_id}/content", f"/v1/artifacts/{never_artifact}/content"),
    ]:
        theirs = httpx.get(server.url + mine, headers=auth(SECOND_KEY))
        envelope(theirs, 404, "not_found")
        missing = httpx.get(server.url + never, headers=auth(SECOND_KEY))
        assert without_id(theirs) == without_id(missing)  # not even a hint that it exists
        assert httpx.get(server.url + mine, headers=auth()).status_code == 200
    cancel = httpx.post(f"{server.url}/v1/tasks/{task_id}/cancel", headers=auth(SECOND_KEY))
    envelope(cancel, 404, "not_found")
    for query in ({}, {"after": task_id}):
        listed = httpx.get(server.url + "/v1/tasks", params=query, headers=auth(SECOND_KEY))
        assert listed.status_code == 200
        assert task_id not in listed.text and artifact_id not in listed.text
    borrowed = {**MUSIC_BODY, "reference_artifact_id": artifact_id}
    response = httpx.post(server.url + MUSIC, json=borrowed, headers=auth(SECOND_KEY))
    error = envelope(response, 404, "not_found")
    assert error["details"] == [{"field": "reference_artifact_id", "issue": "no such artifact"}]


def test_an_idempotency_key_reused_by_another_tenant_is_a_fresh_key(
    server: UvicornServer,
) -> None:
    def post(key: str, idem: str, path: str, body: dict[str, Any]) -> httpx.Response:
        headers = {**auth(key), "idempotency-key": idem}
        return httpx.post(server.url + path, json=body, headers=headers, timeout=10)

    same, other, chat = (f"{word}-{uuid.uuid4()}" for word in ("same", "other", "chat"))
    first = post(DEV_KEY, same, MUSIC, MUSIC_BODY)
    # Same key, same body, another tenant: a new task, not the first tenant's answer.
    theirs = post(SECOND_KEY, same, MUSIC, MUSIC_BODY)
    assert first.status_code == theirs.status_code == 202
    assert theirs.json()["task_id"] != first.json()["task_id"]
    assert "idempotent-replayed" not in theirs.headers
    # Same key, another body, another tenant: no conflict either (music and chat alike).
    post(DEV_KEY, other, MUSIC, MUSIC_BODY)
    changed = post(SECOND_KEY, other, MUSIC, {**MUSIC_BODY, "prompt": "loud drums"})
    assert changed.status_code == 202 and "idempotent-replayed" not in changed.headers
    assert post(DEV_KEY, chat, CHAT, CHAT_BODY).status_code == 200
    other_chat = {**CHAT_BODY, "messages": [{"role": "user", "content": "something else"}]}
    answer = post(SECOND_KEY, chat, CHAT, other_chat)
    assert answer.status_code == 200 and "idempotent-replayed" not in answer.headers
    # Within one tenant the key still works: a replay of its own answer.
    again = post(DEV_KEY, same, MUSIC, MUSIC_BODY)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["task_id"] == first.json()["task_id"]


# --- header injection, oversized headers ------------------------------------------------------


@pytest.mark.parametrize("header", [b"X-Request-Id", b"Idempotency-Key"])
@pytest.mark.parametrize(
    "value", [b"a\rb", b"a\nX-Injected: yes", b"a\rX-Injected: yes", b"\x00a", b"a\x7f", b"a\x01"]
)
def test_control_bytes_in_headers_never_reach_the_gateway(
    server: UvicornServer, header: bytes, value: bytes
) -> None:
    body = orjson.dumps(CHAT_BODY)
    lines = (KEY_LINE, JSON_LINE, header + b": " + value)
    raw = exchange(server, head_of("POST", CHAT.encode(), *lines, length=len(body)), body)
    status, headers, answer = parse(raw)
    assert (status, answer) == (400, PARSER_REFUSAL)
    assert b"x-injected" not in headers and b"x-request-id" not in headers


def test_a_method_the_parser_does_not_know_never_reaches_the_gateway(
    server: UvicornServer,
) -> None:
    assert parse(exchange(server, head_of("FOO", b"/v1/health")))[::2] == (400, PARSER_REFUSAL)


@pytest.mark.parametrize(
    "offered", [b"\xc3\xa9t\xc3\xa9", b"x" * 129, b"tab\there", b"has space", b'"q";x', b""]
)
def test_a_malformed_request_id_is_replaced_never_echoed(
    server: UvicornServer, offered: bytes
) -> None:
    raw = exchange(server, head_of("GET", b"/v1/nope", b"X-Request-Id: " + offered))
    error = raw_envelope(raw, 401, "missing_api_key")
    assert error["request_id"].startswith("req_") and len(error["request_id"]) == 30
    assert not offered or offered not in raw
    kept = exchange(server, head_of("GET", b"/v1/health", b"X-Request-Id: " + b"k" * 128))
    assert parse(kept)[1][b"x-request-id"] == [b"k" * 128]


@pytest.mark.parametrize("offered", [b"tab\there", b"space here", b"k" * 256, b"\xc3\xa9t\xc3\xa9"])
def test_a_malformed_idempotency_key_is_400_and_never_echoed(
    server: UvicornServer, offered: bytes
) -> None:
    body = orjson.dumps(CHAT_BODY)
    lines = (KEY_LINE, JSON_LINE, b"Idempotency-Key: " + offered)
    raw = exchange(server, head_of("POST", CHAT.encode(), *lines, length=len(body)), body)
    assert raw_envelope(raw, 400, "invalid_request")["details"][0]["field"] == "Idempotency-Key"
    assert offered not in raw
    longest = {**auth(), "idempotency-key": f"{uuid.uuid4()}".ljust(255, "k")}
    assert httpx.post(server.url + CHAT, json=CHAT_BODY, headers=longest).status_code == 200


@pytest.mark.parametrize(
    "extra",
    [
        [b"X-Big: " + b"a" * 64 * 1024],
        [b"X-Big: " + b"a" * 1024 * 1024],
        [b"X-H%d: v" % i for i in range(MAX_HEADER_FIELDS + 1)],
        [b"X-H%d: " % i + b"v" * 400 for i in range(90)],
    ],
    ids=["one-64k", "one-1m", "too-many", "many-large"],
)
def test_oversized_headers_get_a_clean_400_at_once(
    server: UvicornServer, extra: list[bytes]
) -> None:
    started = time.monotonic()
    raw = exchange(server, head_of("GET", b"/v1/models", *extra, KEY_LINE))
    assert raw_envelope(raw, 400, "invalid_request")["details"][0]["field"] == "headers"
    assert time.monotonic() - started < 2.0
    within = b"X-Ok: " + b"a" * (MAX_HEADER_BYTES // 2)
    assert parse(exchange(server, head_of("GET", b"/v1/models", within, KEY_LINE)))[0] == 200
