"""Ordinary requests leave no reference cycles behind.

Refcounting frees everything a request allocated the moment it ends; only objects caught in a
reference cycle wait for the cyclic garbage collector, whose runs then cost every request (the
gateway raises the collector's threshold on that assumption, see ``gateway/cli.py``). A cancelled
asyncio task is the classic source: its CancelledError's traceback holds the task's frames. This
drives sync, streamed and refused requests through a real server (uvloop, httptools) and the real
client pool, and asks the collector what it would have had to free.
"""

from __future__ import annotations

import gc
from collections import Counter

import httpx

from tests.conftest import Upstream, auth
from tests.fakes.server import UvicornServer

CHAT = "/v1/chat/completions"
OURS = ("gateway", "providers", "uvicorn")


def body(stream: bool) -> dict[str, object]:
    return {"model": "gpt-test", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}


def cyclic_garbage_of_ours() -> Counter[str]:
    """What a full collection finds unreachable, restricted to objects the server side owns:
    frames running its code and instances of its classes (the test's own client is left out)."""
    gc.collect()
    found: Counter[str] = Counter()
    for obj in gc.garbage:
        if type(obj).__name__ == "frame":
            path = obj.f_code.co_filename
            if any(f"/{package}/" in path for package in OURS):
                found[f"frame {obj.f_code.co_name} ({path.rsplit('/', 2)[-2]})"] += 1
        elif type(obj).__module__.split(".")[0] in OURS:
            found[type(obj).__qualname__] += 1
    return found


def test_sync_streamed_and_refused_requests_leave_no_cycles(
    gateway: UvicornServer, openai_fake: Upstream
) -> None:
    with httpx.Client(base_url=gateway.url, headers=auth()) as client:
        for stream in (False, True):  # warm: pools, caches, lazily built objects
            assert client.post(CHAT, json=body(stream)).status_code == 200
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for _ in range(30):
                assert client.post(CHAT, json=body(False)).status_code == 200
                streamed = client.post(CHAT, json=body(True))
                assert streamed.status_code == 200 and streamed.text.endswith("[DONE]\n\n")
                assert client.post(CHAT, json={"model": 7}).status_code == 400
                assert client.get("/v1/models").status_code == 200
            leftovers = cyclic_garbage_of_ours()
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
    assert leftovers == Counter(), leftovers
