"""The offline ``local`` provider: deterministic text generation and embeddings, no network.

It lets the gateway run, be tried and be tested with no provider keys. The same conversation
(and ``seed``) always yields the same reply; usage counts are exact for its own tokenizer, and
streaming really yields token by token, with an optional delay between tokens. Embeddings come
from the hashed n-gram model of ``providers.embeddings.hashed``.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import ClassVar

import orjson

from providers.base import JSON, ChatCall, ProviderSettings, UpstreamError, as_int, read_options
from providers.embeddings.base import Inputs, encoded, inputs_of
from providers.embeddings.hashed import DIMENSIONS, embed_text, embed_tokens
from providers.tokens import content_text, count_messages, count_text, split_text

_VOCABULARY = tuple(
    "the gateway answers every request quickly and the offline model keeps replies short "
    "while streams arrive token by token so clients can render text as it comes in a test "
    "or a demo this reply is deterministic for the same conversation and seed nothing here "
    "leaves the machine music and chat requests share one error envelope with request ids".split(
        " "
    )
)
_DEFAULT_REPLY_TOKENS = 24
_PROMPT_ECHO_WORDS = 8
_INLINE_EMBED_ITEMS = 16_384  # characters or tokens embedded on the event loop itself


def _completion_id(seed: bytes) -> str:
    return "chatcmpl-" + hashlib.sha256(b"id" + seed).hexdigest()[:24]


def _conversation_seed(call: ChatCall) -> bytes:
    material = orjson.dumps([call.body.get("messages"), call.body.get("seed")], default=str)
    return hashlib.sha256(material).digest()


def generate_tokens(call: ChatCall, choice_index: int) -> tuple[list[str], str]:
    """The reply's tokens for one choice, and its finish reason."""
    seed = _conversation_seed(call)
    rng = random.Random(seed + bytes([choice_index % 256]))
    messages = call.body.get("messages") or []
    last_user = next(
        (content_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"),
        "",
    )
    echo = " ".join(last_user.split()[:_PROMPT_ECHO_WORDS]).rstrip(".!?")
    text = f"Offline reply to: {echo}." if echo else "Offline reply."
    words = [rng.choice(_VOCABULARY) for _ in range(_DEFAULT_REPLY_TOKENS)]
    text += " " + " ".join(words).capitalize() + "."
    stop = call.body.get("stop")
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    for marker in stops:
        cut = text.find(marker)
        if cut >= 0:
            text = text[:cut]
    tokens = _tokens_with_spacing(text)
    limit = as_int(call.body.get("max_completion_tokens") or call.body.get("max_tokens"))
    if limit is not None and len(tokens) > limit:
        return tokens[:limit], "length"
    return tokens, "stop"


def _tokens_with_spacing(text: str) -> list[str]:
    """Split into tokens that concatenate back to the text (leading spaces kept on words)."""
    tokens: list[str] = []
    position = 0
    for token in split_text(text):
        start = text.index(token, position)
        tokens.append(text[position:start] + token)
        position = start + len(token)
    return tokens


def _embed(call: ChatCall, inputs: Inputs, dimensions: int) -> JSON:
    """OpenAI's ``list`` object of embeddings for ``inputs``, with exact usage."""
    encoding_format = call.body.get("encoding_format") or "float"
    data: list[JSON] = []
    tokens = 0
    for index, item in enumerate(inputs):
        if isinstance(item, str):
            vector = embed_text(item, dimensions)
            tokens += max(1, count_text(item))
        else:
            vector = embed_tokens(item, dimensions)
            tokens += len(item)
        data.append(
            {"object": "embedding", "index": index, "embedding": encoded(vector, encoding_format)}
        )
    return {
        "object": "list",
        "data": data,
        "model": call.upstream_model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


@dataclass(frozen=True, slots=True)
class LocalChatOptions:
    """The chat options of the ``local`` kind."""

    token_delay_ms: float = 0.0  # a pause before each streamed token


class LocalAdapter:
    """Deterministic offline chat; ``options.token_delay_ms`` slows streams down for demos."""

    kind = "local"
    needs_base_url: ClassVar[bool] = False  # offline: nothing to connect to
    Options: ClassVar[type[LocalChatOptions]] = LocalChatOptions

    def __init__(self, settings: ProviderSettings) -> None:
        self._token_delay = read_options(self.Options, settings.options).token_delay_ms / 1000.0

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _choices_count(self, call: ChatCall) -> int:
        n = as_int(call.body.get("n") or 1)  # null means not given
        if n is None or n < 1:
            raise UpstreamError("client_error", "n must be a positive integer.")
        return n

    async def complete(self, call: ChatCall) -> JSON:
        prompt_tokens = count_messages(call.body.get("messages") or [])
        choices = []
        completion_tokens = 0
        for index in range(self._choices_count(call)):
            tokens, finish = generate_tokens(call, index)
            completion_tokens += len(tokens)
            choices.append(
                {
                    "index": index,
                    "message": {"role": "assistant", "content": "".join(tokens), "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            )
        return {
            "id": _completion_id(_conversation_seed(call)),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": call.upstream_model,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    async def embed(self, call: ChatCall) -> JSON:
        body = call.body
        dimensions = body.get("dimensions") or DIMENSIONS
        if dimensions > DIMENSIONS:
            raise UpstreamError(
                "client_error",
                f"This model gives at most {DIMENSIONS} dimensions.",
                param="dimensions",
            )
        inputs = inputs_of(body)
        if sum(len(item) for item in inputs) > _INLINE_EMBED_ITEMS:
            # A large input costs the CPU seconds: off the event loop, so other requests move.
            return await asyncio.to_thread(_embed, call, inputs, dimensions)
        return _embed(call, inputs, dimensions)

    async def stream(self, call: ChatCall) -> AsyncIterator[list[JSON]]:
        count = self._choices_count(call)
        base = {
            "id": _completion_id(_conversation_seed(call)),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": call.upstream_model,
        }

        def chunk(index: int, delta: JSON, finish: str | None = None) -> JSON:
            return {
                **base,
                "choices": [
                    {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }

        completion_tokens = 0
        for index in range(count):
            tokens, finish = generate_tokens(call, index)
            yield [chunk(index, {"role": "assistant", "content": ""})]
            for token in tokens:
                await asyncio.sleep(self._token_delay)
                completion_tokens += 1
                yield [chunk(index, {"content": token})]
            yield [chunk(index, {}, finish)]
        prompt_tokens = count_messages(call.body.get("messages") or [])
        yield [
            {
                **base,
                "choices": [],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        ]
