"""A gateway with embeddings models over the OpenAI fakes and the offline model."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import FakeClock, GatewayFactory, Upstream, auth, base_config
from tests.fakes.server import UvicornServer

EMBEDDINGS = "/v1/embeddings"


def embed_config(openai: Upstream, backup: Upstream) -> dict[str, Any]:
    """The base configuration plus: ``embed-test`` on the OpenAI fake (8 dimensions),
    ``embed-pair`` on the fake then its backup (weight 0: always second), ``local-embed``
    offline (256), an alias, and an ``auto`` whose first candidate cannot embed."""
    config = base_config(openai.url)
    config["providers"]["backup"] = {
        **config["providers"]["openai"],
        "base_url": f"{backup.url}/v1",
    }
    config["models"].update(
        {
            "embed-test": {
                "provider": "openai",
                "model": "upstream-embed",
                "capabilities": ["embeddings"],
                "dimensions": 8,
            },
            "embed-pair": {
                "deployments": [
                    {"provider": "openai", "model": "upstream-embed", "weight": 1},
                    {"provider": "backup", "model": "backup-embed", "weight": 0},
                ],
                "capabilities": ["embeddings"],
            },
            "local-embed": {
                "provider": "local",
                "model": "local-embed-1",
                "capabilities": ["embeddings"],
                "dimensions": 256,
            },
        }
    )
    config["routing"] = {
        "auto": ["local-chat", "embed-test", "local-embed"],
        "aliases": {"text-embedding-3-small": "local-embed"},
    }
    return config


@pytest.fixture
def embed_gateway(
    gateway_factory: GatewayFactory, openai_fake: Upstream, openai_backup: Upstream
) -> UvicornServer:
    return gateway_factory(embed_config(openai_fake, openai_backup), clock=FakeClock())


def embed(server: UvicornServer, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(server.url + EMBEDDINGS, json=body, headers={**auth(), **headers}, timeout=10)
