"""``POST /v1/uploads`` takes images: PNG, JPEG and WebP sniffed from their bytes, and a header
declaring more pixels than the limit refused before anything decodes it (RSS stays flat)."""

from __future__ import annotations

import resource
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.artifacts.media import image_dimensions
from providers.images.base import MAX_INPUT_PIXELS
from tests.conftest import GatewayFactory, auth, base_config
from tests.fakes.images import image_bytes, png_bomb_chunks
from tests.fakes.server import UvicornServer

UPLOADS = "/v1/uploads"
BOUNDARY = "imgboundary"


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def server(gateway_factory: GatewayFactory, storage: Path) -> UvicornServer:
    config = base_config()
    config["storage"] = {"path": str(storage), "max_upload_bytes": 4 * 1024 * 1024}
    return gateway_factory(config)


def upload(server: UvicornServer, data: bytes, filename: str = "pic.bin") -> httpx.Response:
    files = {"file": (filename, data, "application/octet-stream")}
    return httpx.post(server.url + UPLOADS, files=files, headers=auth(), timeout=30)


@pytest.mark.parametrize(
    ("image_format", "content_type"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")],
)
def test_images_are_accepted_and_typed_by_their_bytes(
    server: UvicornServer, image_format: str, content_type: str
) -> None:
    data = image_bytes(image_format, (300, 200))
    response = upload(server, data)
    assert response.status_code == 200, response.text
    record = response.json()
    assert record["content_type"] == content_type and record["bytes"] == len(data)
    content = httpx.get(
        f"{server.url}/v1/artifacts/{record['artifact_id']}/content", headers=auth(), timeout=10
    )
    assert content.content == data and content.headers["content-type"] == content_type


def test_a_jpeg_header_behind_metadata_is_still_read() -> None:
    data = image_bytes("JPEG", (321, 123))
    # An APP1 segment of 20 KB between SOI and the frame header.
    padded = data[:2] + b"\xff\xe1" + (20002).to_bytes(2, "big") + bytes(20000) + data[2:]
    assert image_dimensions(padded, "image/jpeg") == (321, 123)
    assert image_dimensions(padded[:1000], "image/jpeg") is None  # not yet in


def bomb_body() -> Iterator[bytes]:
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="bomb.png"'
        "\r\nContent-Type: image/png\r\n\r\n"
    ).encode()
    yield from png_bomb_chunks(30_000, 30_000)
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_a_30000_by_30000_png_is_refused_with_the_envelope_and_rss_stays_flat(
    server: UvicornServer, storage: Path
) -> None:
    body = b"".join(bomb_body())
    assert len(body) < 200 * 1024  # 900 million pixels in about 110 KB
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    rss_before = rss_bytes()
    response = httpx.post(
        server.url + UPLOADS,
        content=body,
        headers={**auth(), "content-type": f"multipart/form-data; boundary={BOUNDARY}"},
        timeout=30,
    )
    assert response.status_code == 413, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "payload_too_large"
    assert "30000x30000" in error["message"] and str(MAX_INPUT_PIXELS) in error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    # Decoding it would take 900 MB (one byte per pixel); the gateway (in this process) grew by
    # far less than even one megapixel row band would cost.
    peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert peak_after - peak_before < 32 * 1024 * 1024
    assert rss_bytes() - rss_before < 32 * 1024 * 1024
    assert list(storage.iterdir()) == []  # nothing half-written is left


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n" + bytes(100),  # no IHDR where it must be
        b"RIFF\x00\x00\x00\x00WEBPJUNK" + bytes(40),
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(4),  # a JPEG that ends before its frame
    ],
)
def test_an_image_without_a_readable_header_is_a_400(
    server: UvicornServer, storage: Path, data: bytes
) -> None:
    response = upload(server, data)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"][0]["field"] == "file"
    assert list(storage.iterdir()) == []
