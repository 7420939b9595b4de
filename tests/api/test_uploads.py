"""``POST /v1/uploads`` and ``/v1/artifacts``: streaming, sniffing, limits, Range, ownership."""

from __future__ import annotations

import hashlib
import math
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.endpoints.uploads import MULTIPART_SLACK_BYTES
from providers.synth.wav import encode_wav
from tests.conftest import DEV_KEY, SECOND_KEY, GatewayFactory, auth, base_config, wait_until
from tests.fakes.server import UvicornServer

UPLOADS = "/v1/uploads"


def tone_wav(seconds: float = 0.5, rate: int = 8000) -> bytes:
    count = int(seconds * rate)
    return encode_wav(
        (int(12000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(count)), rate
    )


def upload(
    server: UvicornServer,
    data: bytes,
    *,
    key: str = DEV_KEY,
    filename: str = "take.wav",
    content_type: str = "audio/wav",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return httpx.post(
        server.url + UPLOADS,
        files={"file": (filename, data, content_type)},
        headers={**auth(key), **(headers or {})},
        timeout=30,
    )


def storage_files(config: dict[str, Any]) -> list[Path]:
    return sorted(Path(config["storage"]["path"]).iterdir())


@pytest.fixture
def storage_config(tmp_path: Path) -> dict[str, Any]:
    config = base_config()
    config["storage"] = {"path": str(tmp_path / "artifacts"), "max_upload_bytes": 256 * 1024}
    return config


@pytest.fixture
def server(gateway_factory: GatewayFactory, storage_config: dict[str, Any]) -> UvicornServer:
    return gateway_factory(storage_config)


def test_upload_stores_the_file_and_serves_it_back(server: UvicornServer) -> None:
    wav = tone_wav()
    response = upload(server, wav, filename="../../etc/my take.wav", content_type="text/plain")
    assert response.status_code == 200, response.text
    record = response.json()
    assert record["artifact_id"].startswith("art_")
    assert record["bytes"] == len(wav)
    assert record["sha256"] == hashlib.sha256(wav).hexdigest()
    # The bytes decide the type, not the declared one; the path is stripped from the name.
    assert record["content_type"] == "audio/wav"
    assert record["filename"] == "my take.wav"
    assert record["expires_at"] - record["created_at"] == 86400
    meta = httpx.get(f"{server.url}/v1/artifacts/{record['artifact_id']}", headers=auth())
    assert meta.status_code == 200 and meta.json()["sha256"] == record["sha256"]
    content = httpx.get(
        f"{server.url}/v1/artifacts/{record['artifact_id']}/content", headers=auth()
    )
    assert content.status_code == 200 and content.content == wav
    assert content.headers["content-type"] == "audio/wav"
    assert content.headers["content-length"] == str(len(wav))
    assert content.headers["accept-ranges"] == "bytes"
    assert "filename*=UTF-8''my%20take.wav" in content.headers["content-disposition"]


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [("bytes=0-99", 0, 99), ("bytes=100-", 100, None), ("bytes=-10", -10, None)],
)
def test_range_requests_get_206_with_the_right_slice(
    server: UvicornServer, header: str, start: int, end: int | None
) -> None:
    wav = tone_wav()
    artifact_id = upload(server, wav).json()["artifact_id"]
    url = f"{server.url}/v1/artifacts/{artifact_id}/content"
    response = httpx.get(url, headers={**auth(), "range": header})
    assert response.status_code == 206
    expected = wav[start : end + 1] if end is not None else wav[start:]
    assert response.content == expected
    first = start if start >= 0 else len(wav) + start
    last = first + len(expected) - 1
    assert response.headers["content-range"] == f"bytes {first}-{last}/{len(wav)}"
    assert response.headers["content-length"] == str(len(expected))


def test_range_past_the_end_is_416_and_garbage_ranges_get_the_whole_file(
    server: UvicornServer,
) -> None:
    wav = tone_wav()
    artifact_id = upload(server, wav).json()["artifact_id"]
    url = f"{server.url}/v1/artifacts/{artifact_id}/content"
    beyond = httpx.get(url, headers={**auth(), "range": f"bytes={len(wav)}-"})
    assert beyond.status_code == 416
    assert beyond.json()["error"]["code"] == "range_not_satisfiable"
    assert beyond.headers["content-range"] == f"bytes */{len(wav)}"
    for odd in ("bytes=0-1,5-9", "lines=1-2", "bytes=9-2"):
        whole = httpx.get(url, headers={**auth(), "range": odd})
        assert whole.status_code == 200 and whole.content == wav


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.7 not audio at all" * 10,
        b"<html><body>hello</body></html>" * 10,
        b"RIFF\x00\x00\x00\x00AVI LIST" * 10,
    ],
)
def test_bytes_that_are_not_audio_get_415_whatever_the_declared_type(
    server: UvicornServer, storage_config: dict[str, Any], data: bytes
) -> None:
    response = upload(server, data, content_type="audio/wav")
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert storage_files(storage_config) == []


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"ID3\x04\x00\x00\x00\x00\x00\x00", "audio/mpeg"),
        (b"\xff\xfb\x90\x64\x00\x00\x00\x00", "audio/mpeg"),
        (b"fLaC\x00\x00\x00\x22", "audio/flac"),
        (b"OggS\x00\x02\x00\x00", "audio/ogg"),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00", "audio/mp4"),
        (b"\xff\xf1\x50\x80\x00\x1f\xfc", "audio/aac"),
    ],
)
def test_each_supported_format_is_recognised(
    server: UvicornServer, head: bytes, expected: str
) -> None:
    response = upload(server, head + bytes(200), filename="clip", content_type="application/zip")
    assert response.status_code == 200, response.text
    assert response.json()["content_type"] == expected


def test_oversize_upload_is_413_and_leaves_nothing_behind(
    server: UvicornServer, storage_config: dict[str, Any]
) -> None:
    limit = storage_config["storage"]["max_upload_bytes"]
    exactly = tone_wav()[:44] + bytes(limit - 44)
    assert upload(server, exactly).status_code == 200
    one_more = exactly + b"\x00"
    response = upload(server, one_more)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert len(storage_files(storage_config)) == 1  # only the first upload


def raw_exchange(server: UvicornServer, head: bytes, body: bytes) -> bytes:
    """Send a request head and part of a body, then read the answer without sending more."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + body)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def test_oversize_upload_is_refused_while_streaming(
    server: UvicornServer, storage_config: dict[str, Any]
) -> None:
    """A chunked body with no Content-Length: the counter answers 413 before the body ends."""
    limit = storage_config["storage"]["max_upload_bytes"]
    boundary = "b0undary"
    part = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode() + tone_wav()[:44]
    payload = part + bytes(limit + 1)  # the file passes the limit; the body never ends
    head = (
        f"POST {UPLOADS} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {DEV_KEY}\r\n"
        f"content-type: multipart/form-data; boundary={boundary}\r\n"
        "transfer-encoding: chunked\r\n\r\n"
    ).encode()
    chunked = f"{len(payload):x}\r\n".encode() + payload + b"\r\n"
    answer = raw_exchange(server, head, chunked)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    wait_until(lambda: storage_files(storage_config) == [])


def file_part(boundary: str, wav: bytes) -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode() + wav


def padded_field_part(boundary: str) -> bytes:
    """A part with an empty value and a header just under the parser's limit for one header."""
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n'
        f"X-Pad: {'p' * 4000}\r\n\r\n\r\n"
    ).encode()


@pytest.mark.parametrize("shape", ["epilogue", "preamble", "extra_parts"])
def test_every_body_byte_counts_against_the_upload_limit(
    server: UvicornServer, storage_config: dict[str, Any], shape: str
) -> None:
    """Bytes outside the file part count too: the body is refused once it passes the limit plus
    the multipart allowance, while it streams (the chunked body here never ends)."""
    body_limit = storage_config["storage"]["max_upload_bytes"] + MULTIPART_SLACK_BYTES
    boundary = "b0undary"
    wav_part = file_part(boundary, tone_wav(0.25))  # a 4 KB WAV
    closing = f"\r\n--{boundary}--\r\n".encode()
    if shape == "epilogue":  # after the closing boundary the parser drops every byte
        payload = wav_part + closing + b"e" * body_limit
    elif shape == "preamble":  # so it does with blank lines before the first boundary
        payload = b"\r\n" * (body_limit // 2) + wav_part + closing
    else:  # empty fields never reach the field counter; their headers are each within bounds
        padding = padded_field_part(boundary) * (body_limit // 4000)
        payload = padding + wav_part + closing
    assert len(payload) > body_limit
    head = (
        f"POST {UPLOADS} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {DEV_KEY}\r\n"
        f"content-type: multipart/form-data; boundary={boundary}\r\n"
        "transfer-encoding: chunked\r\n\r\n"
    ).encode()
    answer = raw_exchange(server, head, f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"payload_too_large" in answer
    wait_until(lambda: storage_files(storage_config) == [])
    # A normal upload, with a blank line before the first boundary and a text field, still works.
    normal = httpx.post(
        server.url + UPLOADS,
        content=b"\r\n" + padded_field_part(boundary) + file_part(boundary, tone_wav()) + closing,
        headers={**auth(), "content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert normal.status_code == 200, normal.text
    assert len(storage_files(storage_config)) == 1


def test_declared_oversize_is_refused_before_the_body(server: UvicornServer) -> None:
    head = (
        f"POST {UPLOADS} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {DEV_KEY}\r\n"
        "content-type: multipart/form-data; boundary=x\r\n"
        f"content-length: {10**9}\r\n\r\n"
    ).encode()
    assert raw_exchange(server, head, b"").startswith(b"HTTP/1.1 413")


@pytest.mark.parametrize(
    ("content_type", "body", "status", "code"),
    [
        ("application/json", b"{}", 415, "unsupported_media_type"),
        ("multipart/form-data", b"--x--\r\n", 415, "unsupported_media_type"),
        ("multipart/form-data; boundary=x", b"--x--\r\n", 400, "invalid_request"),
        ("multipart/form-data; boundary=x", b"garbage without a boundary", 400, "invalid_request"),
    ],
)
def test_malformed_uploads_get_the_envelope(
    server: UvicornServer, content_type: str, body: bytes, status: int, code: str
) -> None:
    response = httpx.post(
        server.url + UPLOADS, content=body, headers={**auth(), "content-type": content_type}
    )
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_two_files_or_no_file_field_are_invalid(server: UvicornServer) -> None:
    wav = tone_wav()
    two = httpx.post(
        server.url + UPLOADS,
        files=[("file", ("a.wav", wav, "audio/wav")), ("file", ("b.wav", wav, "audio/wav"))],
        headers=auth(),
    )
    assert two.status_code == 400
    other = httpx.post(
        server.url + UPLOADS, files={"audio": ("a.wav", wav, "audio/wav")}, headers=auth()
    )
    assert other.status_code == 400
    assert other.json()["error"]["details"][0]["field"] == "file"


def test_another_keys_artifact_is_not_found(server: UvicornServer) -> None:
    artifact_id = upload(server, tone_wav()).json()["artifact_id"]
    for path in (f"/v1/artifacts/{artifact_id}", f"/v1/artifacts/{artifact_id}/content"):
        response = httpx.get(server.url + path, headers=auth(SECOND_KEY))
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    for bogus in ("art_../../etc/passwd", "..%2F..%2Fetc", "art_" + "Z" * 26):
        response = httpx.get(f"{server.url}/v1/artifacts/{bogus}/content", headers=auth())
        assert response.status_code == 404


def test_idempotent_upload_replays_and_keeps_one_file(
    server: UvicornServer, storage_config: dict[str, Any]
) -> None:
    wav = tone_wav()
    headers = {"idempotency-key": "upload-1"}
    first = upload(server, wav, headers=headers)
    again = upload(server, wav, headers=headers)
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert len(storage_files(storage_config)) == 1
    different = upload(server, tone_wav(0.25), headers=headers)
    assert different.status_code == 409
    assert different.json()["error"]["code"] == "idempotency_conflict"
    assert len(storage_files(storage_config)) == 1


def test_uploads_expire_and_the_sweep_removes_them(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    config = base_config()
    config["storage"] = {
        "path": str(tmp_path / "a"),
        "upload_retention_s": 5,
        "sweep_interval_s": 0.05,
    }
    wall = [1_700_000_000.0]
    server = gateway_factory(config, wall_clock=lambda: wall[0])
    artifact_id = upload(server, tone_wav()).json()["artifact_id"]
    assert httpx.get(f"{server.url}/v1/artifacts/{artifact_id}", headers=auth()).status_code == 200
    wall[0] += 6
    assert httpx.get(f"{server.url}/v1/artifacts/{artifact_id}", headers=auth()).status_code == 404
    wait_until(lambda: not (tmp_path / "a" / artifact_id).exists())
