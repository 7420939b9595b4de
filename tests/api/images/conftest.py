"""Fixtures of the hosted image model tests: the fake Replicate and fal.ai upstreams (one each
per module, reset around each test) and a gateway whose catalog maps FLUX models onto them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.api.images.support import reset_around
from tests.conftest import TEST_ENV, GatewayFactory, base_config
from tests.fakes import fal_images_upstream, replicate_images_upstream
from tests.fakes.server import UvicornServer, serve_aiohttp

REPLICATE_TOKEN = "r8_images_token_for_tests"
FAL_KEY = "fal-images-key-for-tests"
TEST_ENV.update({"TEST_REPLICATE_IMAGES_KEY": REPLICATE_TOKEN, "TEST_FAL_IMAGES_KEY": FAL_KEY})
POLL_INTERVAL_S = 0.002


@dataclass
class ImageFakes:
    replicate: replicate_images_upstream.ReplicateImagesPlan
    fal: fal_images_upstream.FalImagesPlan
    urls: dict[str, str]

    def reset(self) -> None:
        self.replicate.reset()
        self.fal.reset()


def hosted_config(urls: dict[str, str], **options: dict[str, Any]) -> dict[str, Any]:
    """The base config plus both providers and their FLUX models; ``options`` per provider."""
    config = base_config()
    config["relay"]["attempts_per_deployment"] = 1  # one prediction per request, to count
    config["providers"].update(
        {
            "replicate": {
                "kind": "replicate",
                "base_url": urls["replicate"],
                "api_key_env": "TEST_REPLICATE_IMAGES_KEY",
                "options": {"poll_interval_s": POLL_INTERVAL_S, **options.get("replicate", {})},
            },
            "fal": {
                "kind": "fal",
                "base_url": urls["fal"],
                "api_key_env": "TEST_FAL_IMAGES_KEY",
                "options": {"poll_interval_s": POLL_INTERVAL_S, **options.get("fal", {})},
            },
        }
    )
    text, both = ["image.text"], ["image.text", "image.edit"]
    config["models"].update(
        {
            "flux-schnell": {"provider": "replicate", "model": "black-forest-labs/flux-schnell"},
            "flux-dev": {"provider": "replicate", "model": "black-forest-labs/flux-dev"},
            "flux-kontext": {
                "provider": "replicate",
                "model": "black-forest-labs/flux-kontext-pro",
            },
            "fal-flux": {"provider": "fal", "model": "fal-ai/flux/schnell"},
            "fal-flux-edit": {"provider": "fal", "model": "fal-ai/flux/dev/image-to-image"},
        }
    )
    capabilities = {
        "flux-schnell": text,
        "flux-dev": both,
        "flux-kontext": ["image.edit"],
        "fal-flux": text,
        "fal-flux-edit": ["image.edit"],
    }
    for name, granted in capabilities.items():
        config["models"][name].update(capabilities=granted, status="preview")
    return config


@pytest.fixture(scope="module")
def _image_fakes() -> Iterator[ImageFakes]:
    replicate = replicate_images_upstream.ReplicateImagesPlan()
    fal = fal_images_upstream.FalImagesPlan()
    with (
        serve_aiohttp(replicate_images_upstream.make_app(replicate, REPLICATE_TOKEN)) as r_url,
        serve_aiohttp(fal_images_upstream.make_app(fal, FAL_KEY)) as f_url,
    ):
        yield ImageFakes(replicate, fal, {"replicate": r_url, "fal": f_url})


@pytest.fixture
def fakes(_image_fakes: ImageFakes) -> Iterator[ImageFakes]:
    yield from reset_around(_image_fakes)


@pytest.fixture
def hosted(gateway_factory: GatewayFactory, fakes: ImageFakes) -> UvicornServer:
    return gateway_factory(hosted_config(fakes.urls))
