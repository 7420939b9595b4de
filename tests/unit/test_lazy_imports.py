"""Libraries only some routes need stay out of a started gateway's memory until first use.

Pillow (images), PyYAML (``/openapi.yaml``) and aiohttp (the client of music, image and download
calls) cost about 30 MB of resident memory together; a gateway on the embedded default that has
started but served none of them must not have loaded them. Checked in a fresh interpreter, since
this test process may have imported all three already.
"""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import asyncio, sys
from gateway.app import create_app
from gateway.config.settings import load_settings

async def lifespan(app):
    events = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent = []
    loaded = []
    async def receive():
        if sent and sent[-1]["type"] == "lifespan.startup.complete" and len(loaded) == 0:
            loaded.append(sorted(n for n in ("PIL", "yaml", "aiohttp") if n in sys.modules))
        return events.pop(0)
    async def send(message):
        sent.append(message)
    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    return sent, loaded

sent, loaded = asyncio.run(lifespan(create_app(load_settings(None, env={}))))
types = [m["type"] for m in sent]
assert types == ["lifespan.startup.complete", "lifespan.shutdown.complete"], sent
print(",".join(loaded[0]))
"""


def test_a_started_default_gateway_loads_no_pillow_yaml_or_aiohttp() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    assert loaded == ""
