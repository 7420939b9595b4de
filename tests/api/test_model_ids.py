"""Catalog ids with ``/`` (``meta-llama/Llama-3.1-8B``): configured, listed, retrieved, served."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from gateway.config.settings import settings_from_dict
from tests.conftest import DEV_KEY, TEST_ENV, GatewayFactory, Upstream, auth, base_config
from tests.fakes.server import UvicornServer

LLAMA = "meta-llama/Llama-3.1-8B"


def config(openai_url: str = "http://127.0.0.1:9") -> dict[str, Any]:
    base = base_config(openai_url)
    base["models"][LLAMA] = {"provider": "openai", "model": "llama-upstream"}
    base["models"]["org/team/model-v2"] = {"provider": "local", "model": "local-1"}
    base["routing"]["aliases"] = {"llama": LLAMA}
    return base


@pytest.fixture
def server(gateway_factory: GatewayFactory, openai_fake: Upstream) -> UvicornServer:
    return gateway_factory(config(openai_fake.url))


def sdk(server: UvicornServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=DEV_KEY, max_retries=0, timeout=10)


def test_the_sdk_retrieves_an_id_with_a_slash(server: UvicornServer) -> None:
    # The SDK sends the slash percent-encoded (models/meta-llama%2FLlama-3.1-8B).
    model = sdk(server).models.retrieve(LLAMA)
    assert model.id == LLAMA
    assert LLAMA in [m.id for m in sdk(server).models.list()]


@pytest.mark.parametrize("path", [LLAMA, "meta-llama%2FLlama-3.1-8B", "llama", "org/team/model-v2"])
def test_raw_and_encoded_slashes_and_aliases_all_find_the_model(
    server: UvicornServer, path: str
) -> None:
    response = httpx.get(f"{server.url}/v1/models/{path}", headers=auth())
    assert response.status_code == 200, response.text
    assert response.json()["id"] in (LLAMA, "org/team/model-v2")


@pytest.mark.parametrize("path", ["meta-llama/nope", "meta-llama", "meta-llama/Llama-3.1-8B/x"])
def test_near_misses_are_model_not_found(server: UvicornServer, path: str) -> None:
    response = httpx.get(f"{server.url}/v1/models/{path}", headers=auth())
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


def test_chat_with_an_id_with_a_slash(server: UvicornServer, openai_fake: Upstream) -> None:
    answer = sdk(server).chat.completions.create(
        model=LLAMA, messages=[{"role": "user", "content": "Hi"}]
    )
    assert answer.model == LLAMA
    assert openai_fake.plan.requests[0].body["model"] == "llama-upstream"


def test_metrics_label_the_template_not_the_id(server: UvicornServer) -> None:
    httpx.get(f"{server.url}/v1/models/{LLAMA}", headers=auth())
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'route="/v1/models/{id}"' in metrics
    assert "Llama-3.1-8B" not in metrics.replace(f'model="{LLAMA}"', "")


@pytest.mark.parametrize("bad", ["/leading", "trailing/", "a//b", "a/./b", "a/../b"])
def test_ids_no_url_can_name_are_refused_by_the_config(bad: str) -> None:
    broken = base_config()
    broken["models"][bad] = {"provider": "local", "model": "local-1"}
    with pytest.raises(ValueError, match="models"):
        settings_from_dict(broken, TEST_ENV)
