"""OpenTelemetry traces through the real server, exported over OTLP/HTTP to an in-process
receiver (a real HTTP app decoding OTLP's protobuf, as a collector would).

A chat request continuing a client's W3C ``traceparent`` gives one SERVER span in that trace
with the GenAI attributes and the request id, and one CLIENT child span per upstream attempt;
the provider receives the attempt's own ``traceparent``; a retry is an event on the request
span; and no prompt, completion or key appears anywhere in what was exported.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from gateway.app import create_app
from gateway.config.settings import settings_from_dict
from tests.conftest import DEV_KEY, OPENAI_SECRET, TEST_ENV, Upstream, auth, base_config, wait_until
from tests.fakes.server import UvicornServer, serve_aiohttp

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
PROMPT = "the secret plan is purple elephants"


class Receiver:
    """Every span exported to it, decoded: name, ids, kind, attributes, events."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.raw = b""
        self._lock = threading.Lock()

    async def traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        export = ExportTraceServiceRequest()
        export.ParseFromString(body)
        with self._lock:
            self.raw += body
            for resource in export.resource_spans:
                for scope in resource.scope_spans:
                    for span in scope.spans:
                        self.spans.append(
                            {
                                "name": span.name,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent_id": span.parent_span_id.hex(),
                                "kind": span.kind,
                                "attributes": {a.key: _value(a.value) for a in span.attributes},
                                "events": [e.name for e in span.events],
                            }
                        )
        return web.Response(body=b"", content_type="application/x-protobuf")


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


@pytest.fixture
def traced(openai_fake: Upstream) -> Iterator[tuple[UvicornServer, Receiver]]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/v1/traces", receiver.traces)
    with serve_aiohttp(app) as collector:
        config = base_config(openai_fake.url)
        config["telemetry"] = {"otlp_endpoint": collector, "service_name": "gateway-under-test"}
        settings = settings_from_dict(config, TEST_ENV)
        with UvicornServer(create_app(settings)) as server:
            yield server, receiver


def test_a_request_and_its_attempts_are_spans_in_the_client_s_trace(
    traced: tuple[UvicornServer, Receiver], openai_fake: Upstream
) -> None:
    server, receiver = traced
    openai_fake.plan.push("status", times=1, status=503)  # one retry, then the answer
    body = {"model": "gpt-test", "messages": [{"role": "user", "content": PROMPT}]}
    answer = httpx.post(
        server.url + "/v1/chat/completions",
        json=body,
        headers={**auth(), "traceparent": CLIENT_PARENT},
    )
    assert answer.status_code == 200
    request_id = answer.headers["x-request-id"]
    wait_until(lambda: len(receiver.spans) >= 3, timeout=10)  # the batch exports each second

    (request_span,) = [s for s in receiver.spans if s["kind"] == 2]  # SERVER
    attempts = [s for s in receiver.spans if s["kind"] == 3]  # CLIENT
    assert request_span["trace_id"] == TRACE_ID and request_span["parent_id"] == "00f067aa0ba902b7"
    assert request_span["name"] == "POST /v1/chat/completions"
    attributes = request_span["attributes"]
    assert attributes["beatra.request_id"] == request_id
    assert attributes["gen_ai.system"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-test"
    assert attributes["gen_ai.response.model"] == "gpt-test"
    assert attributes["gen_ai.usage.input_tokens"] == answer.json()["usage"]["prompt_tokens"]
    assert attributes["gen_ai.usage.output_tokens"] == answer.json()["usage"]["completion_tokens"]
    assert attributes["http.response.status_code"] == 200
    assert "retry" in request_span["events"]

    assert len(attempts) == 2
    assert all(s["trace_id"] == TRACE_ID for s in attempts)
    assert all(s["parent_id"] == request_span["span_id"] for s in attempts)
    assert [s["attributes"]["beatra.outcome"] for s in attempts] == ["server_error", "ok"]
    # The provider got each attempt's own context, in the client's trace.
    sent = [r.headers.get("traceparent") for r in openai_fake.plan.requests]
    assert sent == [f"00-{TRACE_ID}-{s['span_id']}-01" for s in attempts]

    # Nothing secret was exported: not the prompt, the completion, the key or a credential.
    completion = answer.json()["choices"][0]["message"]["content"]
    for secret in (PROMPT, completion, DEV_KEY, OPENAI_SECRET):
        assert secret.encode() not in receiver.raw, secret
