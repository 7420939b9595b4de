"""The offline music model sings lyrics: a request with lyrics is a task, not a 400."""

from __future__ import annotations

import httpx

from tests.conftest import auth
from tests.fakes.server import UvicornServer


def test_local_music_takes_lyrics(gateway: UvicornServer) -> None:
    body = {
        "model": "local-music",
        "prompt": "folk song",
        "lyrics": "la la la, the river runs",
        "duration_seconds": 1,
    }
    response = httpx.post(gateway.url + "/v1/music/generations", json=body, headers=auth())
    assert response.status_code == 202, response.text
    assert response.json()["type"] == "music.text"
