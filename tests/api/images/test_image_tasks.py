"""The product's task flow for images: ``Prefer: respond-async`` on the image routes.

The same requests as the OpenAI-compatible answers, with RFC 7240's ``Prefer: respond-async``,
answer ``202`` with a task (``image.generation`` / ``image.edit``) that ``/v1/tasks`` lists,
inspects and cancels; the images are the task's output artifacts, owner-only. An edit's files
are kept as upload artifacts of the key, so the task's record alone drives the call; an
``image_artifact_id`` is used as it is.
"""

from __future__ import annotations

import io
import time
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from PIL import Image

from gateway.contract.schemas_music import TASK
from gateway.tasks.image_jobs import prefers_async
from tests.api.images.support import decode
from tests.api.images.test_generations import image_config
from tests.conftest import SECOND_KEY, GatewayFactory, auth
from tests.fakes.server import UvicornServer

ASYNC = {"prefer": "respond-async"}
TASK_SCHEMA = Draft202012Validator(TASK)


@pytest.fixture
def server(gateway_factory: GatewayFactory) -> UvicornServer:
    return gateway_factory(image_config())


def png(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def settled(server: UvicornServer, task_id: str, key_headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        task = httpx.get(f"{server.url}/v1/tasks/{task_id}", headers=key_headers).json()
        if task["status"] in {"succeeded", "failed", "canceled"}:
            return dict(task)
        assert time.monotonic() < deadline, task
        time.sleep(0.01)


def content(server: UvicornServer, artifact_id: str) -> bytes:
    response = httpx.get(f"{server.url}/v1/artifacts/{artifact_id}/content", headers=auth())
    assert response.status_code == 200
    return response.content


def test_prefer_header_parsing_follows_rfc_7240() -> None:
    assert prefers_async(b"respond-async")
    assert prefers_async(b"wait=10, Respond-Async")
    assert prefers_async(b"respond-async; foo=bar")
    assert not prefers_async(b"return=minimal")
    assert not prefers_async(b"respond-asynchronously")
    assert not prefers_async(None)


def test_an_async_generation_is_a_task_whose_images_are_artifacts(server: UvicornServer) -> None:
    body = {"model": "local-image", "prompt": "a green field", "n": 2, "size": "256x256"}
    created = httpx.post(server.url + "/v1/images/generations", json=body, headers=auth() | ASYNC)
    assert created.status_code == 202, created.text
    task = created.json()
    assert TASK_SCHEMA.is_valid(task)
    assert (task["type"], task["status"], task["model"]) == (
        "image.generation",
        "queued",
        "local-image",
    )
    done = settled(server, task["task_id"], auth())
    assert done["status"] == "succeeded" and TASK_SCHEMA.is_valid(done)
    artifacts = done["result"]["artifacts"]
    assert [a["content_type"] for a in artifacts] == ["image/png", "image/png"]
    images = [decode(content(server, a["artifact_id"])) for a in artifacts]
    assert [(i.format, i.size) for i in images] == [("PNG", (256, 256))] * 2
    assert images[0].tobytes() != images[1].tobytes()  # image i is painted with seed + i
    listed = httpx.get(server.url + "/v1/tasks?type=image.generation", headers=auth()).json()
    assert [t["task_id"] for t in listed["data"]] == [task["task_id"]]
    # Another key sees neither the task nor its images.
    other = auth(SECOND_KEY)
    assert httpx.get(f"{server.url}/v1/tasks/{task['task_id']}", headers=other).status_code == 404
    first = artifacts[0]["artifact_id"]
    response = httpx.get(f"{server.url}/v1/artifacts/{first}/content", headers=other)
    assert response.status_code == 404


def test_an_async_edit_keeps_its_input_and_derives_from_it(server: UvicornServer) -> None:
    source = png((128, 96), (200, 30, 30))
    created = httpx.post(
        server.url + "/v1/images/edits",
        data={"model": "local-image", "prompt": "make it dusk", "strength": "0.3"},
        files={"image": ("red.png", source, "image/png")},
        headers=auth() | ASYNC,
    )
    assert created.status_code == 202, created.text
    assert created.json()["type"] == "image.edit"
    done = settled(server, created.json()["task_id"], auth())
    assert done["status"] == "succeeded", done
    edited = decode(content(server, done["result"]["artifacts"][0]["artifact_id"]))
    assert edited.size == (128, 96)  # "auto": the input's own size
    red = edited.convert("RGB").resize((1, 1)).getpixel((0, 0))
    assert isinstance(red, tuple) and red[0] > red[2]  # still mostly the input's red
    # The input was kept as an upload artifact of the key, byte for byte.
    metrics = httpx.get(server.url + "/metrics").text
    assert f'beatra_artifact_bytes_total{{kind="upload"}} {float(len(source))}' in metrics


def test_an_async_edit_of_an_uploaded_image_by_id(server: UvicornServer) -> None:
    upload = httpx.post(
        server.url + "/v1/uploads",
        files={"file": ("blue.png", png((64, 64), (20, 20, 220)), "image/png")},
        headers=auth(),
    )
    assert upload.status_code in {200, 201}, upload.text
    created = httpx.post(
        server.url + "/v1/images/edits",
        files={
            "model": (None, "local-image"),
            "prompt": (None, "a calm sea"),
            "image_artifact_id": (None, upload.json()["artifact_id"]),
        },
        headers=auth() | ASYNC,
    )
    assert created.status_code == 202, created.text
    done = settled(server, created.json()["task_id"], auth())
    assert done["status"] == "succeeded", done
    assert decode(content(server, done["result"]["artifacts"][0]["artifact_id"])).size == (64, 64)


def test_a_running_image_task_is_canceled_and_leaves_no_images(
    gateway_factory: GatewayFactory,
) -> None:
    config = image_config()
    config["providers"]["local"]["options"] = {"render_delay_s": 30.0}
    server = gateway_factory(config)
    body = {"model": "local-image", "prompt": "slow", "size": "256x256"}
    created = httpx.post(server.url + "/v1/images/generations", json=body, headers=auth() | ASYNC)
    task_id = created.json()["task_id"]
    # The render is held for 30 s: the task cannot have finished when the cancel arrives.
    canceled = httpx.post(f"{server.url}/v1/tasks/{task_id}/cancel", headers=auth())
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    assert settled(server, task_id, auth())["status"] == "canceled"
    assert "result" not in settled(server, task_id, auth())


def test_one_idempotency_key_is_one_task_and_not_a_sync_answer(server: UvicornServer) -> None:
    body = {"model": "local-image", "prompt": "once", "size": "256x256"}
    headers = auth() | ASYNC | {"idempotency-key": "image-task-once"}
    first = httpx.post(server.url + "/v1/images/generations", json=body, headers=headers)
    again = httpx.post(server.url + "/v1/images/generations", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["task_id"] == again.json()["task_id"]
    assert len(httpx.get(server.url + "/v1/tasks", headers=auth()).json()["data"]) == 1
    # The same key without the preference asks for a different outcome: refused, not mixed up.
    sync_headers = {k: v for k, v in headers.items() if k != "prefer"}
    sync = httpx.post(server.url + "/v1/images/generations", json=body, headers=sync_headers)
    assert sync.status_code == 409 and sync.json()["error"]["code"] == "idempotency_conflict"


def test_a_bad_async_request_is_the_envelope_and_makes_no_task(server: UvicornServer) -> None:
    body = {"model": "local-image", "prompt": "x", "size": "999x999"}
    refused = httpx.post(server.url + "/v1/images/generations", json=body, headers=auth() | ASYNC)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_request"
    assert httpx.get(server.url + "/v1/tasks", headers=auth()).json()["data"] == []
