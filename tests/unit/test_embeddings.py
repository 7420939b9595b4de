"""The offline embedding model, the answer checks every embeddings adapter shares, and the
catalog's ``embeddings`` capability."""

from __future__ import annotations

import base64
import math
from typing import Any

import pytest

from gateway.config.settings import ConfigError, load_settings, settings_from_dict
from providers.base import UpstreamError
from providers.embeddings.base import float32_bytes, normalise_answer
from providers.embeddings.hashed import DIMENSIONS, embed_text, embed_tokens
from tests.conftest import TEST_ENV, base_config


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_the_same_text_gives_the_same_unit_vector() -> None:
    first = embed_text("The quick brown fox")
    assert first == embed_text("The quick brown fox") == embed_text("the QUICK brown fox")
    assert len(first) == DIMENSIONS
    assert math.fsum(x * x for x in first) == pytest.approx(1.0, abs=1e-6)
    assert embed_tokens([1, 2, 3]) == embed_tokens([1, 2, 3]) != embed_tokens([3, 2, 1])


@pytest.mark.parametrize("dimensions", [DIMENSIONS, 64, 16])
def test_similar_texts_are_closer_than_unrelated_ones(dimensions: int) -> None:
    def vector(text: str) -> list[float]:
        return embed_text(text, dimensions)

    fox = vector("The quick brown fox jumps over the lazy dog")
    near = vector("A quick brown fox jumped over a lazy dog")
    far = vector("Quarterly revenue grew in the European market")
    assert cosine(fox, near) > cosine(fox, far) + 0.1
    assert cosine(vector("invoice overdue"), vector("overdue invoices")) > cosine(
        vector("invoice overdue"), vector("mountain hiking trail")
    )
    assert cosine(embed_tokens([5, 6, 7, 8]), embed_tokens([5, 6, 7, 9])) > cosine(
        embed_tokens([5, 6, 7, 8]), embed_tokens([90, 91, 92])
    )


def test_fewer_dimensions_are_the_first_ones_normalised_again() -> None:
    full = embed_text("truncate me, please")
    short = embed_text("truncate me, please", 16)
    norm = math.sqrt(math.fsum(x * x for x in full[:16]))
    assert short == pytest.approx([x / norm for x in full[:16]], abs=1e-6)


def b64(vector: list[float]) -> str:
    return base64.b64encode(float32_bytes(vector)).decode()


def answer(*embeddings: Any, **extra: Any) -> dict[str, Any]:
    data = [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(embeddings)]
    return {"object": "list", "data": data, **extra}


def test_answers_are_put_in_the_encoding_the_client_asked_for() -> None:
    vector = [0.5, -0.25, 1.0]
    as_floats = normalise_answer(answer(b64(vector)), 1, "float")
    assert as_floats["data"][0]["embedding"] == vector
    as_text = normalise_answer(answer(vector), 1, "base64")
    assert as_text["data"][0]["embedding"] == b64(vector)
    usage = {"prompt_tokens": 2, "total_tokens": 2}
    assert normalise_answer(answer(vector, usage=usage), 1, "float")["usage"] == usage


def test_answers_are_sorted_by_index_and_checked() -> None:
    shuffled = {"data": [{"index": 1, "embedding": [1.0]}, {"index": 0, "embedding": [0.0]}]}
    ordered = normalise_answer(shuffled, 2, "float")["data"]
    assert [item["embedding"] for item in ordered] == [[0.0], [1.0]]
    broken: list[tuple[Any, int]] = [
        (answer([1.0]), 2),  # one embedding for two inputs
        (answer([1.0], [2.0]), 1),
        ({"data": [{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [1.0]}]}, 2),
        (answer(["x"]), 1),
        (answer([True]), 1),
        (answer("not base64!"), 1),
        (answer(base64.b64encode(b"abc").decode()), 1),  # not whole float32 values
        ({"data": "nope"}, 1),
        ([], 1),
    ]
    for body, count in broken:
        with pytest.raises(UpstreamError) as raised:
            normalise_answer(body, count, "float")
        assert raised.value.kind == "server", body


def test_the_embedded_default_serves_local_embed_and_auto_reaches_it() -> None:
    settings = load_settings(env={})
    model = settings.models["local-embed"]
    assert model.capabilities == ("embeddings",) and model.dimensions == DIMENSIONS
    assert "local-embed" in settings.auto


def test_a_provider_kind_that_cannot_embed_is_refused_at_start() -> None:
    config = base_config()
    config["models"]["claude-test"]["capabilities"] = ["embeddings"]
    with pytest.raises(ConfigError, match=r'models\.claude-test\.capabilities: .*"anthropic"'):
        settings_from_dict(config, TEST_ENV)
