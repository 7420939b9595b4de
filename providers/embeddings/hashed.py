"""The offline embedding model of the ``local`` provider: hashed character n-grams and words.

Feature hashing (the "hashing trick"): every character trigram of the lower-cased text (padded
with a space at each end, so word starts and ends count) and every word is hashed, and adds
itself, with a sign taken from the same hash, to one slot in each of three bands of the
vector (slots 0-15, 16-63, 64-255); the sum is L2-normalised. The same text always gives the
same vector, on any machine (crc32, not Python's salted ``hash``), and texts that share
spelling share slots, so similar texts have a higher cosine than unrelated ones. Token arrays
hash their token ids and id pairs the same way.

A smaller ``dimensions`` keeps the first slots and normalises again, as OpenAI's shortened
embeddings do; the bands are why that works: every feature is in the first 16 slots, so a
short vector still describes the whole text, only more coarsely.
"""

from __future__ import annotations

import re
import zlib

from providers.embeddings.base import unit

DIMENSIONS = 256
_WORD = re.compile(r"\w+")
# (first slot, slots, bits of the hash the slot is taken from, the sign's bit) per band.
_BANDS = ((0, 16, 0, 29), (16, 48, 4, 30), (64, 192, 10, 31))
# A word says more than any one of its trigrams: weigh it as much as two of them.
_WORD_WEIGHT = 2.0


def _add(vector: list[float], feature: bytes, weight: float) -> None:
    hashed = zlib.crc32(feature)
    for first, slots, shift, sign in _BANDS:
        slot = first + (hashed >> shift) % slots
        vector[slot] += -weight if hashed >> sign & 1 else weight


def embed_text(text: str, dimensions: int = DIMENSIONS) -> list[float]:
    vector = [0.0] * DIMENSIONS
    lowered = text.lower()
    padded = f" {lowered} "
    for start in range(len(padded) - 2):
        _add(vector, b"c" + padded[start : start + 3].encode(), 1.0)
    for word in _WORD.findall(lowered):
        _add(vector, b"w" + word.encode(), _WORD_WEIGHT)
    return unit(vector[:dimensions]) if dimensions < DIMENSIONS else unit(vector)


def embed_tokens(tokens: list[int], dimensions: int = DIMENSIONS) -> list[float]:
    vector = [0.0] * DIMENSIONS
    previous: int | None = None
    for token in tokens:
        _add(vector, b"t%d" % token, 1.0)
        if previous is not None:
            _add(vector, b"p%d,%d" % (previous, token), 1.0)
        previous = token
    return unit(vector[:dimensions]) if dimensions < DIMENSIONS else unit(vector)
