"""Validation of ``POST /v1/embeddings`` bodies, with one ``details`` entry per bad field.

``input`` is what OpenAI accepts: a string, an array of strings, an array of token ids, or an
array of token arrays, never empty, at most ``MAX_INPUTS`` items in any outer array, every
array of one kind. ``encoding_format``, ``dimensions`` and ``user`` are checked strictly; other
fields pass through to providers that support them, as for chat. A null optional field means
"not given", as in OpenAI's API. Integers are integers as JSON Schema counts them: a token id or
``dimensions`` of ``3.0`` is ``3`` (token ids are rewritten as integers in the body the provider
gets), and a token id is at most ``MAX_TOKEN_ID``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.contract.errors import MAX_LISTED_ISSUES, invalid
from providers.base import as_int

MAX_INPUTS = 2048  # OpenAI's cap on any array of ``input``
MAX_TOKEN_ID = 2**31 - 1  # far above any tokenizer's vocabulary
ENCODING_FORMATS = ("float", "base64")
Issues = list[dict[str, str]]


@dataclass(slots=True)
class EmbeddingsRequest:
    """The validated request; ``body`` is the client's JSON object (token ids as integers)."""

    body: dict[str, Any]
    model: str
    count: int  # embeddings asked for
    tokens: int  # the prompt's estimated tokens, sizing the rate-limit reservation
    encoding_format: str
    dimensions: int | None


def _is_token(value: Any) -> bool:
    number = as_int(value)
    return number is not None and 0 <= number <= MAX_TOKEN_ID


def _check_tokens(tokens: list[Any], where: str, issues: Issues) -> None:
    if not tokens:
        issues.append({"field": where, "issue": "must not be an empty token array"})
    elif not all(_is_token(token) for token in tokens):
        issues.append(
            {"field": where, "issue": f"token ids must be integers from 0 to {MAX_TOKEN_ID}"}
        )
    else:
        tokens[:] = [int(token) for token in tokens]  # 3.0 -> 3 for the provider


def _check_input(value: Any, issues: Issues) -> tuple[int, int]:
    """Check ``input``; return (embeddings asked for, estimated tokens)."""
    if isinstance(value, str):
        if not value:
            issues.append({"field": "input", "issue": "must not be an empty string"})
        return 1, len(value) // 4 + 1
    shape = "a string, an array of strings, an array of token ids or an array of token arrays"
    if not isinstance(value, list):
        issues.append({"field": "input", "issue": f"is required and must be {shape}"})
        return 0, 0
    if not value:
        issues.append({"field": "input", "issue": "must not be an empty array"})
        return 0, 0
    if len(value) > MAX_INPUTS:
        issues.append({"field": "input", "issue": f"must have at most {MAX_INPUTS} items"})
        return 0, 0
    first = value[0]
    if _is_token(first) or isinstance(first, int | float):
        _check_tokens(value, "input", issues)
        return 1, len(value)
    if not isinstance(first, str | list):
        issues.append({"field": "input[0]", "issue": f"input must be {shape}"})
        return 0, 0
    tokens = 0
    for index, item in enumerate(value):
        if len(issues) > MAX_LISTED_ISSUES:
            break
        where = f"input[{index}]"
        if isinstance(first, str):
            if not isinstance(item, str):
                issues.append({"field": where, "issue": "must be a string, as input[0] is"})
            elif not item:
                issues.append({"field": where, "issue": "must not be an empty string"})
            else:
                tokens += len(item) // 4 + 1
        elif not isinstance(item, list):
            issues.append({"field": where, "issue": "must be a token array, as input[0] is"})
        else:
            _check_tokens(item, where, issues)
            tokens += len(item)
    return len(value), tokens


def validate_embeddings(body: dict[str, Any]) -> EmbeddingsRequest:
    """Return the validated request or raise ``invalid_request`` listing every problem."""
    issues: Issues = []
    model = body.get("model")
    if not isinstance(model, str) or not model:
        issues.append({"field": "model", "issue": "is required and must be a non-empty string"})
    count, tokens = _check_input(body.get("input"), issues)
    encoding_format = body.get("encoding_format")
    if encoding_format is None:
        encoding_format = "float"
    elif not isinstance(encoding_format, str) or encoding_format not in ENCODING_FORMATS:
        issues.append({"field": "encoding_format", "issue": 'must be "float" or "base64"'})
    dimensions = body.get("dimensions")
    if dimensions is not None:
        dimensions = as_int(dimensions)
        if dimensions is None or dimensions < 1:
            issues.append({"field": "dimensions", "issue": "must be a positive integer"})
        else:
            body["dimensions"] = dimensions  # 3.0 -> 3 for the provider
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        issues.append({"field": "user", "issue": "must be a string"})
    if issues:
        raise invalid(issues)
    return EmbeddingsRequest(
        body=body,
        model=str(model),
        count=count,
        tokens=tokens,
        encoding_format=str(encoding_format),
        dimensions=dimensions,
    )
