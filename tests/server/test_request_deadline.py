"""One chat request's deadline across every attempt and fallback, on a real gateway and upstream.

A hung upstream costs one read timeout, not one per attempt (a timed-out call is not repeated
unless ``relay.retry_on_timeout``); ``relay.request_timeout_s`` ends a request at the deadline
however many attempts are left, a stream's included until its first event; a retry after a 5xx
still happens when the deadline leaves room for it, and not when its backoff would pass it.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import httpx
import pytest

from tests.conftest import GatewayFactory, Upstream, auth, base_config, wait_until
from tests.fakes.server import UvicornServer

CHAT = "/v1/chat/completions"
READ_TIMEOUT_S = 0.4
# Far past every deadline below: the upstream never answers in time.
HUNG: dict[str, Any] = {"delay": 5.0}


@functools.cache
def client() -> httpx.Client:
    return httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0))


def gateway(factory: GatewayFactory, upstream: Upstream, **relay: Any) -> UvicornServer:
    """``gpt-test`` on one deployment, two attempts per deployment (the default)."""
    config = base_config(upstream.url)
    config["relay"].update(relay)
    config["providers"]["openai"]["read_timeout_s"] = READ_TIMEOUT_S
    return factory(config)


def post(server: UvicornServer, stream: bool) -> tuple[httpx.Response, float]:
    body = {"model": "gpt-test", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    started = time.monotonic()
    response = client().post(server.url + CHAT, json=body, headers=auth())
    return response, time.monotonic() - started


def error_code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


@pytest.mark.parametrize("stream", [False, True], ids=["sync", "stream"])
def test_a_hung_upstream_costs_one_read_timeout_not_one_per_attempt(
    gateway_factory: GatewayFactory, openai_fake: Upstream, stream: bool
) -> None:
    server = gateway(gateway_factory, openai_fake)
    openai_fake.plan.push("slow", times=2, **HUNG)
    response, took = post(server, stream)
    assert (response.status_code, error_code(response)) == (504, "upstream_timeout")
    assert openai_fake.plan.calls == 1  # the timed-out call was not sent again
    # Two attempts took 2 x the read timeout before; one takes one.
    assert READ_TIMEOUT_S <= took < 1.5 * READ_TIMEOUT_S


def test_retry_on_timeout_repeats_the_timed_out_call(
    gateway_factory: GatewayFactory, openai_fake: Upstream
) -> None:
    server = gateway(gateway_factory, openai_fake, retry_on_timeout=True)
    openai_fake.plan.push("slow", **HUNG)  # then a normal answer
    response, took = post(server, stream=False)
    assert response.status_code == 200, response.text
    assert openai_fake.plan.calls == 2
    assert took >= READ_TIMEOUT_S


@pytest.mark.parametrize("stream", [False, True], ids=["sync", "stream"])
def test_the_request_deadline_ends_every_attempt(
    gateway_factory: GatewayFactory, openai_fake: Upstream, stream: bool
) -> None:
    # Three attempts of one read timeout each would take 1.2 s; the deadline is 0.6 s.
    deadline_s = 1.5 * READ_TIMEOUT_S
    server = gateway(
        gateway_factory,
        openai_fake,
        retry_on_timeout=True,
        attempts_per_deployment=3,
        request_timeout_s=deadline_s,
    )
    openai_fake.plan.push("slow", times=3, **HUNG)
    response, took = post(server, stream)
    assert (response.status_code, error_code(response)) == (504, "upstream_timeout")
    assert openai_fake.plan.calls == 2  # the second attempt was cut at the deadline
    assert deadline_s <= took < 2 * READ_TIMEOUT_S
    wait_until(lambda: openai_fake.plan.abandoned_requests == 2)  # both were hung up on


def test_a_stream_must_start_by_the_deadline(
    gateway_factory: GatewayFactory, openai_fake: Upstream
) -> None:
    """The head arrives at once, then no event: the deadline, not the line timeout, ends it."""
    deadline_s = 0.5 * READ_TIMEOUT_S
    server = gateway(gateway_factory, openai_fake, request_timeout_s=deadline_s)
    openai_fake.plan.push("stall", after=0)
    response, took = post(server, stream=True)
    assert (response.status_code, error_code(response)) == (504, "upstream_timeout")
    assert openai_fake.plan.calls == 1
    assert deadline_s <= took < READ_TIMEOUT_S


def test_a_5xx_is_still_retried_within_the_deadline(
    gateway_factory: GatewayFactory, openai_fake: Upstream
) -> None:
    server = gateway(gateway_factory, openai_fake, request_timeout_s=5.0)
    openai_fake.plan.push("status", status=503)  # then a normal answer
    response, _ = post(server, stream=False)
    assert response.status_code == 200, response.text
    assert openai_fake.plan.calls == 2


def test_no_retry_whose_backoff_would_pass_the_deadline(
    gateway_factory: GatewayFactory, openai_fake: Upstream
) -> None:
    server = gateway(
        gateway_factory,
        openai_fake,
        request_timeout_s=0.5,
        backoff_base_s=5.0,  # a backoff of at least 2.5 s: no room for it
        backoff_max_s=5.0,
    )
    openai_fake.plan.push("status", status=503)
    response, took = post(server, stream=False)
    assert (response.status_code, error_code(response)) == (502, "upstream_error")
    assert openai_fake.plan.calls == 1
    assert took < 0.5  # answered at once, not after sleeping out a backoff it had no room for
