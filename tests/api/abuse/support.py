"""Shared by the hostile-client tests: the server they attack, and raw socket helpers that send
what httpx refuses to and read the answers back."""

from __future__ import annotations

import hashlib
import select
import socket
from pathlib import Path
from typing import Any

import httpx
import orjson

from gateway.app import create_app
from gateway.config.settings import settings_from_dict
from gateway.contract.errors import ERROR_CODES
from gateway.http.server_protocol import deadline_protocol
from tests.conftest import DEV_KEY, TEST_ENV, auth, base_config
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
