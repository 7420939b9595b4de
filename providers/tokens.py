"""Approximate token counting shared by the offline provider and the gateway's estimates.

A word, a number or a single punctuation mark counts as one token. Real tokenizers differ by
model; this is the offline provider's own exact count and everyone else's cheap estimate.
"""

from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(r"\w+|[^\w\s]")

# OpenAI's published rule of thumb for chat framing: a few tokens per message and per reply.
TOKENS_PER_MESSAGE = 4
TOKENS_PER_REPLY = 3


def count_text(text: str) -> int:
    return len(_TOKEN.findall(text))


def split_text(text: str) -> list[str]:
    return _TOKEN.findall(text)


def content_text(content: Any, separator: str = " ") -> str:
    """The text of a message's ``content``: a string, or the text parts of a part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return separator.join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def count_messages(messages: list[Any]) -> int:
    total = TOKENS_PER_REPLY
    for message in messages:
        if isinstance(message, dict):
            total += TOKENS_PER_MESSAGE + count_text(content_text(message.get("content")))
    return total
