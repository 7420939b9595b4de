"""The native Responses wire format: request body, answer and event checks, and the body a
continued conversation sends."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.contract.responses_answer import output_items
from gateway.contract.responses_native import NativeEvents, native_body
from providers.base import ChatCall, UpstreamError
from providers.chat.openai_responses import build_responses_request, parse_event, parse_response
from providers.scrub import Scrubber, SecretIndex


def test_the_request_is_the_clients_but_for_the_model_and_the_stream_flag() -> None:
    body = {"model": "auto", "input": "hi", "stream": True, "stream_options": {}}
    sync = orjson.loads(build_responses_request(ChatCall(body, "up-1", "req_1")))
    assert sync == {"model": "up-1", "input": "hi"}
    streamed = orjson.loads(build_responses_request(ChatCall(body, "up-1", "req_1", stream=True)))
    assert streamed == {**body, "model": "up-1"}
    assert body["model"] == "auto"  # the client's body is not touched


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b"[]",
        b'{"id": "resp_1", "object": "response"}',
        b'{"output": []}',
        b'{"id": "resp_1", "output": [], "status": "failed"}',
    ],
)
def test_an_unusable_answer_is_the_providers_failure(raw: bytes) -> None:
    with pytest.raises(UpstreamError) as caught:
        parse_response(raw)
    assert caught.value.kind == "server"


def test_failure_events_raise_with_their_text_scrubbed() -> None:
    scrubber = Scrubber(SecretIndex(["sk-secret-123456"]), {})
    with pytest.raises(UpstreamError) as caught:
        parse_event(b'{"type": "error", "message": "bad key sk-secret-123456"}', scrubber)
    assert "sk-secret" not in caught.value.message
    for raw in (b'{"type": "response.failed", "response": {}}', b"{}", b"nope"):
        with pytest.raises(UpstreamError):
            parse_event(raw)
    assert parse_event(b'{"type": "response.created"}') == {"type": "response.created"}


def test_a_continued_conversation_is_spelled_out_in_input() -> None:
    body = {"model": "m", "input": "And?", "previous_response_id": "resp_1", "store": False}
    earlier: list[dict[str, Any]] = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Yo"}],
        },
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
    ]
    assert native_body(body, earlier) == {
        "model": "m",
        "store": False,
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
            {"role": "assistant", "content": "Yo"},
            earlier[2],
            {"role": "user", "content": "And?"},
        ],
    }
    assert native_body(body, None) is body


def test_native_events_take_the_catalog_id_and_an_error_continues_the_count() -> None:
    events = NativeEvents("gpt-native")
    usage = {"input_tokens": 3, "output_tokens": 4}
    out = events.feed(
        [
            {"type": "response.created", "response": {"model": "up"}, "sequence_number": 0},
            {
                "type": "response.completed",
                "response": {"model": "up", "usage": usage},
                "sequence_number": 1,
            },
        ]
    )
    assert out.count(b'"model":"gpt-native"') == 2 and b'"up"' not in out
    assert out.startswith(b"event: response.created\ndata: ")
    assert events.usage == {"prompt_tokens": 3, "completion_tokens": 4}
    assert events.response == {"model": "gpt-native", "usage": usage}
    assert b'"sequence_number":2' in events.error("upstream_error", "x")


def test_only_well_formed_output_items_are_carried_into_the_next_turn() -> None:
    response = {
        "output": [
            {"type": "reasoning", "summary": []},
            {"type": "function_call", "call_id": "c", "name": "f"},  # no arguments
            "not an item",
            {
                "type": "message",
                "content": [{"type": "output_text"}, {"type": "refusal", "refusal": "No"}],
            },
        ]
    }
    assert output_items(response) == [
        {"type": "message", "role": "assistant", "content": [{"type": "refusal", "refusal": "No"}]}
    ]
