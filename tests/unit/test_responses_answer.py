"""Chat completion -> Response, and chat chunks -> Responses events, held to OpenAI's schemas."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.contract.responses_answer import from_completion, output_items
from gateway.contract.responses_request import read_request
from gateway.contract.responses_stream import ResponseEvents
from tests.openai_schemas import check, check_events, check_response

TOOLS = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]
REQUEST = read_request(
    {"model": "auto", "input": "Weather?", "tools": TOOLS, "metadata": {"a": "b"}}
)

# A chat completion as an OpenAI-compatible provider answers a tool call, recorded in chat's
# wire format (usage with its details objects).
TOOL_COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "upstream",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Checking.",
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 20,
        "completion_tokens": 7,
        "total_tokens": 27,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 2},
    },
}


def answer(completion: dict[str, Any]) -> dict[str, Any]:
    response = from_completion(
        REQUEST, completion, "gpt-test", "resp_X", created_at=10, completed_at=11
    )
    check_response(response)
    return response


def test_text_and_tool_calls_become_output_items() -> None:
    response = answer(TOOL_COMPLETION)
    assert response["id"] == "resp_X" and response["object"] == "response"
    assert response["model"] == "gpt-test" and response["status"] == "completed"
    assert response["metadata"] == {"a": "b"}
    assert response["tools"] == [{**TOOLS[0], "description": None, "strict": None}]
    message, call = response["output"]
    assert message["type"] == "message" and message["id"].startswith("msg_")
    assert message["content"] == [
        {"type": "output_text", "text": "Checking.", "annotations": [], "logprobs": []}
    ]
    assert call["type"] == "function_call" and call["id"].startswith("fc_")
    assert (call["call_id"], call["name"], call["arguments"]) == (
        "call_1",
        "get_weather",
        '{"city":"Paris"}',
    )
    assert response["usage"] == {
        "input_tokens": 20,
        "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 2},
        "total_tokens": 27,
    }
    assert response["incomplete_details"] is None and response["error"] is None


def test_length_is_incomplete_and_a_refusal_is_refusal_content() -> None:
    completion = {
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Half"},
                "finish_reason": "length",
            }
        ]
    }
    response = answer(completion)
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["output"][0]["status"] == "incomplete"
    assert "usage" not in response  # the provider reported none
    refused = answer(
        {
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": None, "refusal": "No."},
                    "finish_reason": "content_filter",
                }
            ]
        }
    )
    assert refused["incomplete_details"] == {"reason": "content_filter"}
    assert refused["output"][0]["content"] == [{"type": "refusal", "refusal": "No."}]


def test_output_items_feed_the_next_turn() -> None:
    items = output_items(answer(TOOL_COMPLETION))
    assert items == [
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Checking."}],
        },
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
        },
    ]


def parse(stream: bytes) -> list[dict[str, Any]]:
    events = []
    for block in stream.split(b"\n\n"):
        if block:
            name, data = block.split(b"\n")
            event = orjson.loads(data.removeprefix(b"data: "))
            assert name == b"event: " + event["type"].encode()
            events.append(event)
    return events


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


# A streamed tool call as OpenAI-compatible providers send it: a role chunk, text, the call's
# id and name with empty arguments, its arguments in pieces, the finish reason, then usage.
TOOL_STREAM = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Chec"}),
    chunk({"content": "king."}),
    chunk(
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        }
    ),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
    chunk({}, "tool_calls"),
    {"choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27}},
]


def test_a_streamed_tool_call_is_the_documented_event_sequence() -> None:
    events = ResponseEvents(REQUEST, "resp_S", "gpt-test", clock=lambda: 100.0)
    stream = events.start() + b"".join(events.feed([c]) for c in TOOL_STREAM) + events.finish()
    parsed = parse(stream)
    check_events(parsed)
    assert [e["type"] for e in parsed] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert (
        parsed[0]["response"]["status"] == "in_progress" and parsed[0]["response"]["output"] == []
    )
    assert parsed[6]["text"] == "Checking."
    assert parsed[9]["output_index"] == 1 and parsed[9]["item"]["call_id"] == "call_1"
    assert parsed[12]["arguments"] == '{"city":"Paris"}' and parsed[12]["name"] == "get_weather"
    final = parsed[-1]["response"]
    assert final["status"] == "completed" and final["usage"]["total_tokens"] == 27
    assert [item["type"] for item in final["output"]] == ["message", "function_call"]
    assert final["output"][1] == parsed[13]["item"]
    assert events.response == final


def test_a_cut_stream_is_incomplete_and_an_error_event_matches_the_schema() -> None:
    events = ResponseEvents(REQUEST, "resp_S", "gpt-test")
    stream = events.start() + events.feed([chunk({"content": "Hal"}), chunk({}, "length")])
    parsed = parse(stream + events.finish())
    check_events(parsed)
    assert parsed[-1]["type"] == "response.incomplete"
    assert parsed[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    failed = ResponseEvents(REQUEST, "resp_E", "gpt-test")
    broken = parse(
        failed.start()
        + failed.feed([chunk({"content": "x"})])
        + failed.error("upstream_error", "The upstream provider failed.")
    )
    check_events(broken)
    assert broken[-1] == {
        "type": "error",
        "code": "upstream_error",
        "message": "The upstream provider failed.",
        "param": None,
        "sequence_number": len(broken) - 1,
    }
    check("ResponseErrorEvent", broken[-1])
