"""The published request schema of ``POST /v1/responses`` and its validator agree: every body
the unit tests hold valid matches the schema, every one they hold invalid does not (the fuzz
test then sends what the schema allows and forbids at random)."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from gateway.contract.errors import GatewayError
from gateway.contract.responses_request import read_request
from gateway.contract.schemas_responses import RESPONSES_REQUEST
from tests.unit.test_responses_request import AGENT_TURN, BAD_FIELDS, BAD_ITEMS, BUILT_IN_TOOLS

SCHEMA = Draft202012Validator(RESPONSES_REQUEST)
VALID: list[dict[str, Any]] = [
    AGENT_TURN,
    {"model": "m", "input": "x"},
    {
        "model": "m",
        "input": [
            {"role": "user", "content": [{"type": "input_image", "image_url": "https://x/y.png"}]},
            {"type": "message", "role": "assistant", "content": "ok", "phase": None},
            {"type": "function_call_output", "call_id": "c", "output": []},
        ],
        "text": {"format": {"type": "json_schema", "name": "n", "schema": {}}, "verbosity": "low"},
        "tool_choice": {"type": "function", "name": "f"},
        "stream": True,
        "stream_options": {"include_obfuscation": False},
        "max_output_tokens": 16.0,
        "reasoning": {"effort": "low", "summary": None},
        "background": False,
        "truncation": "disabled",
        "include": [],
        "metadata": {"k": "v"},
    },
]


@pytest.mark.parametrize("body", VALID)
def test_what_the_validator_accepts_the_schema_allows(body: dict[str, Any]) -> None:
    read_request(body)
    assert list(SCHEMA.iter_errors(body)) == []


INVALID = [
    *({"model": "m", "input": "x", **extra} for extra, _ in BAD_FIELDS),
    *({"model": "m", "input": items} for items, _ in BAD_ITEMS),
    *({"model": "m", "input": "x", "tools": [tool]} for tool in BUILT_IN_TOOLS),
    {"model": "m", "input": "x", "background": 0},  # 0 is not false
    {"model": "m", "input": "x", "tools": [{"type": "function", "name": "f", "defer_loading": 0}]},
    {
        "model": "m",
        "input": [
            {"role": "user", "content": [{"type": "input_image", "image_url": "u", "detail": ""}]}
        ],
    },
]


@pytest.mark.parametrize("body", INVALID)
def test_what_the_validator_refuses_the_schema_forbids(body: dict[str, Any]) -> None:
    with pytest.raises(GatewayError):
        read_request(body)
    assert list(SCHEMA.iter_errors(body)) != []
