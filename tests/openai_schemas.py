"""OpenAI's own Responses schemas (``tests/reference/openai_responses_schemas.json``, origin in
``tests/reference/README.md``) as validators: every answer and stream event the tests see is
checked against them."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

REFERENCE = Path(__file__).resolve().parent / "reference" / "openai_responses_schemas.json"


@functools.cache
def _document() -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads(REFERENCE.read_bytes())
    return document


@functools.cache
def validator(name: str) -> Draft202012Validator:
    """A validator for one of the document's schemas (its top ones are ``CreateResponse``,
    ``Response`` and ``ResponseStreamEvent``), resolving its ``$defs``."""
    document = _document()
    schema = {
        **document["schemas"].get(name, {"$ref": f"#/$defs/{name}"}),
        "$defs": document["$defs"],
    }
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@functools.cache
def _event_schemas() -> dict[str, str]:
    """Each event type of ``ResponseStreamEvent`` -> the name of its member schema."""
    definitions = _document()["$defs"]
    members: dict[str, str] = {}
    for member in definitions["ResponseStreamEvent"]["anyOf"]:
        name = member["$ref"].removeprefix("#/$defs/")
        for kind in definitions[name]["properties"]["type"]["enum"]:
            members[kind] = name
    return members


def check(name: str, instance: Any) -> None:
    """Fail with the schema's first complaint when ``instance`` does not match ``name``."""
    error = best_match(validator(name).iter_errors(instance))
    assert error is None, f"{name}: {error.message:.300} at {list(error.path)}"


def check_response(response: Any) -> None:
    check("Response", response)


def check_events(events: list[dict[str, Any]]) -> None:
    """Each event matches ``ResponseStreamEvent``; sequence numbers count from 0."""
    members = _event_schemas()
    for event in events:
        # The member for the event's type first (its complaint is the readable one), then the
        # union, which is what OpenAI's document says a stream carries.
        check(members[event["type"]], event)
        check("ResponseStreamEvent", event)
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
