"""Hostile clients against a real server: keys, tenants, headers, bodies, paths, file names.

Raw sockets send what httpx refuses to (control bytes in headers, unnormalised paths, chunked
bodies without a length). Some bytes never reach the gateway: uvicorn's httptools parser itself
answers a request line or header it cannot parse (CR, LF, NUL, DEL or other control bytes in a
header value; an unknown method) with a plain-text 400 and closes; the tests pin that down too.
It sets no limit on header size, though: the gateway's server protocol does, while parsing. Every
method on every route, and bad query strings, are swept in ``test_fuzz.py``.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import select
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.app import create_app
from gateway.config.settings import settings_from_dict
from gateway.contract.errors import ERROR_CODES, MAX_LISTED_ISSUES
from gateway.http.body import MAX_JSON_DEPTH
from gateway.http.request_head import MAX_HEADER_BYTES, MAX_HEADER_FIELDS
from gateway.http.server_protocol import deadline_protocol
from gateway.policy.auth import KeyRing
from tests.api.test_uploads import tone_wav
from tests.conftest import DEV_KEY, SECOND_KEY, TEST_ENV, auth, base_config, wait_until
from tests.fakes.server import UvicornServer

CHAT, MUSIC = "/v1/chat/completions", "/v1/music/generations"
CHAT_BODY: dict[str, Any] = {"model": "local-chat", "messages": [{"role": "user", "content": "hi"}]}
MUSIC_BODY: dict[str, Any] = {"model": "local-music", "prompt": "calm piano", "duration_seconds": 1}
BODY_LIMIT = 1024 * 1024
DISABLED_KEY = "disabled-tenant-key"
KEY_LINE = b"Authorization: Bearer " + DEV_KEY.encode()
JSON_LINE = b"Content-Type: application/json"
PARSER_REFUSAL = b"Invalid HTTP request received."  # uvicorn's own 400, before the gateway


def abuse_config(storage: Path) -> dict[str, Any]:
    config = base_config()
    config["server"]["max_body_bytes"] = BODY_LIMIT
    config["providers"]["local"]["options"] = {"max_duration_seconds": 5}
    config["storage"] = {"path": str(storage), "max_upload_bytes": 256 * 1024}
    disabled = hashlib.sha256(DISABLED_KEY.encode()).hexdigest()
    config["keys"]["off"] = {"sha256": disabled, "disabled": True}
    return config


def serve(config: dict[str, Any]) -> UvicornServer:
    settings = settings_from_dict(config, TEST_ENV)
    # The production protocol: it holds request heads to their limits.
    protocol = deadline_protocol(settings.server.header_timeout_s, settings.server.body_timeout_s)
    return UvicornServer(create_app(settings), http=protocol).start()


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("abuse") / "artifacts"


@pytest.fixture(scope="module")
def server(storage: Path) -> Iterator[UvicornServer]:
    running = serve(abuse_config(storage))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def dev_task(server: UvicornServer) -> dict[str, Any]:
    """A finished music task of the dev key, with its generated artifact."""
    created = httpx.post(server.url + MUSIC, json=MUSIC_BODY, headers=auth(), timeout=10)
    url = f"{server.url}/v1/tasks/{created.json()['task_id']}"
    wait_until(lambda: httpx.get(url, headers=auth()).json()["status"] == "succeeded")
    task: dict[str, Any] = httpx.get(url, headers=auth()).json()
    return task


def exchange(server: UvicornServer, head: bytes, body: bytes = b"") -> bytes:
    """Send raw bytes and read one whole answer (by its Content-Length); a hang fails in 5 s.

    The body goes in 64 KiB pieces and stops once an answer is waiting: a refused upload is
    answered before the client has sent everything."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5.0) as sock:
        sock.sendall(head)
        for start in range(0, len(body), 65536):
            if select.select([sock], [], [], 0)[0]:
                break
            sock.sendall(body[start : start + 65536])
        received = b""
        while not _whole(received) and (chunk := sock.recv(65536)):
            received += chunk
    return received


def _whole(raw: bytes) -> bool:
    if b"\r\n\r\n" not in raw:
        return False
    _, headers, body = parse(raw)
    return len(body) >= int(headers.get(b"content-length", [b"0"])[0])


def head_of(method: str, path: bytes, *lines: bytes, length: int | None = None) -> bytes:
    lines = (method.encode() + b" " + path + b" HTTP/1.1", b"Host: gateway", *lines)
    if length is not None:
        lines += (b"Content-Length: %d" % length,)
    return b"\r\n".join([*lines, b"", b""])


def parse(raw: bytes) -> tuple[int, dict[bytes, list[bytes]], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    headers: dict[bytes, list[bytes]] = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return int(head.split()[1]), headers, body


def raw_envelope(raw: bytes, status: int, code: str) -> dict[str, Any]:
    got, headers, body = parse(raw)
    assert got == status, raw[:500]
    error: dict[str, Any] = orjson.loads(body)["error"]
    assert error["code"] == code and ERROR_CODES[code].status == status
    assert headers[b"x-request-id"] == [error["request_id"].encode()]
    return error


def envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code and error["request_id"] == response.headers["x-request-id"]
    assert isinstance(error["details"], list) and error["retryable"] is ERROR_CODES[code].retryable
    return error


def without_id(response: httpx.Response) -> dict[str, Any]:
    return {k: v for k, v in response.json()["error"].items() if k != "request_id"}


def post_json(server: UvicornServer, path: str, raw: bytes) -> httpx.Response:
    headers = {**auth(), "content-type": "application/json"}
    return httpx.post(server.url + path, content=raw, headers=headers, timeout=10)


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
