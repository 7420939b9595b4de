"""The contract between the gateway and embeddings adapters, and OpenAI's embeddings wire format.

An embeddings adapter takes one call (the validated OpenAI-shaped ``/embeddings`` body, with the
provider's own model id and the request's deadline: the same ``ChatCall`` shape chat uses, never
streamed) and returns OpenAI's ``list`` object. Every failure leaves it as one ``UpstreamError``.

``normalise_answer`` checks an answer from a provider over the network (the offline model builds
its own answers with ``encoded`` and ``unit``): one embedding per input, in input order, in the
encoding the client asked for (``float``, or ``base64``: the vector's little-endian float32
bytes, as OpenAI sends them). A provider that ignores ``encoding_format`` is converted here
rather than passed on wrong.
"""

from __future__ import annotations

import base64
import math
import struct
from typing import Any, Protocol, runtime_checkable

from providers.base import JSON, ChatCall, UpstreamError

Inputs = list[str | list[int]]


@runtime_checkable
class EmbeddingsAdapter(Protocol):
    """What an adapter that serves ``POST /v1/embeddings`` offers (besides start and close)."""

    async def embed(self, call: ChatCall) -> JSON:
        """Return OpenAI's ``{"object": "list", "data": [...], "usage": {...}}`` for
        ``call.body`` (``model`` is rewritten by the gateway)."""


def inputs_of(body: JSON) -> Inputs:
    """The validated ``input`` as a list: strings, or token arrays (one per embedding)."""
    value = body["input"]
    if isinstance(value, str):
        return [value]
    if value and isinstance(value[0], int):
        return [value]
    return list(value)


def float32_bytes(vector: list[float]) -> bytes:
    return struct.pack(f"<{len(vector)}f", *vector)


def from_float32_bytes(raw: bytes) -> list[float]:
    if len(raw) % 4:
        raise ValueError("not a whole number of float32 values")
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def encoded(vector: list[float], encoding_format: str) -> list[float] | str:
    """A vector as the client asked for it."""
    if encoding_format == "base64":
        return base64.b64encode(float32_bytes(vector)).decode("ascii")
    return vector


def unit(vector: list[float]) -> list[float]:
    """``vector`` scaled to length 1 (a zero vector stays zero), rounded to float32 so the
    float and base64 answers carry exactly the same numbers."""
    norm = math.sqrt(math.fsum(value * value for value in vector))
    scaled = [value / norm for value in vector] if norm else vector
    return from_float32_bytes(float32_bytes(scaled))


def _vector(value: Any, encoding_format: str) -> list[float] | str:
    if isinstance(value, str):
        if encoding_format == "base64":
            return value
        try:
            return from_float32_bytes(base64.b64decode(value, validate=True))
        except ValueError as exc:
            raise UpstreamError("server", "The provider sent a malformed embedding.") from exc
    if isinstance(value, list) and all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in value
    ):
        return encoded([float(x) for x in value], encoding_format)
    raise UpstreamError("server", "The provider sent a malformed embedding.")


def normalise_answer(answer: Any, count: int, encoding_format: str) -> JSON:
    """An answer checked and put in the client's encoding: ``count`` embeddings, sorted by
    ``index``; ``usage`` as the provider gave it (or None)."""
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list) or len(data) != count:
        raise UpstreamError("server", "The provider returned an unexpected body.")
    items: list[JSON] = []
    for position, item in enumerate(data):
        if not isinstance(item, dict):
            raise UpstreamError("server", "The provider returned an unexpected body.")
        index = item.get("index", position)
        vector = _vector(item.get("embedding"), encoding_format)
        items.append({"object": "embedding", "index": index, "embedding": vector})
    items.sort(key=lambda item: item["index"] if isinstance(item["index"], int) else -1)
    if [item["index"] for item in items] != list(range(count)):
        raise UpstreamError("server", "The provider returned embeddings out of order.")
    usage = answer.get("usage")
    return {"object": "list", "data": items, "usage": usage if isinstance(usage, dict) else None}
