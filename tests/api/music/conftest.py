"""The music task tests' fixtures: the three provider fakes (one set per module, reset around
each test) and a gateway over them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.music.support import (
    FAL_SECRET,
    REPLICATE_SECRET,
    STABILITY_SECRET,
    MusicFakes,
    music_config,
)
from tests.conftest import GatewayFactory
from tests.fakes import fal_upstream, replicate_upstream, stability_upstream
from tests.fakes.server import UvicornServer, serve_aiohttp


@pytest.fixture(scope="module")
def _music_fakes() -> Iterator[MusicFakes]:
    replicate = replicate_upstream.ReplicatePlan()
    fal = fal_upstream.FalPlan()
    stability = stability_upstream.StabilityFaultPlan()
    with (
        serve_aiohttp(replicate_upstream.make_app(replicate, api_key=REPLICATE_SECRET)) as r_url,
        serve_aiohttp(fal_upstream.make_app(fal, api_key=FAL_SECRET)) as f_url,
        serve_aiohttp(stability_upstream.make_app(stability, api_key=STABILITY_SECRET)) as s_url,
    ):
        yield MusicFakes(
            replicate, fal, stability, {"replicate": r_url, "fal": f_url, "stability": s_url}
        )


@pytest.fixture
def fakes(_music_fakes: MusicFakes) -> Iterator[MusicFakes]:
    _music_fakes.reset()
    yield _music_fakes
    _music_fakes.reset()


@pytest.fixture
def server(gateway_factory: GatewayFactory, fakes: MusicFakes) -> UvicornServer:
    return gateway_factory(music_config(fakes.urls))
