"""Every deadline between a client, the gateway and an upstream, measured on a real server.

Upstream: connect (a listener whose accept queue is full), first byte, between chunks, a whole
line of a stream, the total of a sync call (a stream has none, by design). Client: connections
sending a byte at a time must not starve others, and a client that stops reading a stream must
not make the gateway buffer what the upstream keeps producing.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.app import create_app
from gateway.config.settings import settings_from_dict
from gateway.http.server_protocol import deadline_protocol
from tests.conftest import TEST_ENV, GatewayFactory, Upstream, auth, base_config, wait_until
from tests.fakes.server import UvicornServer, open_tcp_sockets

CHAT = "/v1/chat/completions"
CONNECT_TIMEOUT_S = 0.2
READ_TIMEOUT_S = 0.3
TOTAL_TIMEOUT_S = 0.6
SLACK_S = 1.0  # scheduling noise allowed on top of a deadline on a busy machine


@functools.cache
def client() -> httpx.Client:
    """One client for the module (making one costs more than a request, and would be timed);
    no keep-alive, so each request's connection ends with it."""
    return httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0))


def body(stream: bool, model: str = "gpt-test") -> dict[str, Any]:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}


def timed_gateway(factory: GatewayFactory, upstream_url: str, **provider: Any) -> UvicornServer:
    """One deployment, one attempt: each deadline is seen exactly once."""
    config = base_config(upstream_url)
    config["relay"]["attempts_per_deployment"] = 1
    deadlines = {"connect_timeout_s": CONNECT_TIMEOUT_S, "read_timeout_s": READ_TIMEOUT_S}
    config["providers"]["openai"].update(deadlines, total_timeout_s=TOTAL_TIMEOUT_S)
    config["providers"]["openai"].update(provider)
    return factory(config)


def post(server: UvicornServer, stream: bool) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = client().post(server.url + CHAT, json=body(stream), headers=auth())
    return response, time.monotonic() - started


def assert_timed_out(response: httpx.Response) -> None:
    assert response.status_code == 504, response.text
    error = response.json()["error"]
    assert (error["code"], error["retryable"]) == ("upstream_timeout", True)


@contextlib.contextmanager
def unaccepting_listener() -> Iterator[str]:
    """A port that listens but never accepts, its accept queue already full: a connection
    attempt hangs in the handshake exactly like one to an unreachable host."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = [socket.socket() for _ in range(3)]
    for filler in fillers:
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for sock in [*fillers, listener]:
            sock.close()


@pytest.mark.parametrize("stream", [False, True], ids=["sync", "stream"])
def test_connect_timeout(gateway_factory: GatewayFactory, stream: bool) -> None:
    with unaccepting_listener() as url:
        server = timed_gateway(gateway_factory, url)
        response, took = post(server, stream)
    assert_timed_out(response)
    assert CONNECT_TIMEOUT_S <= took < CONNECT_TIMEOUT_S + SLACK_S


@pytest.mark.parametrize("stream", [False, True], ids=["sync", "stream"])
def test_first_byte_timeout(
    gateway_factory: GatewayFactory, openai_fake: Upstream, stream: bool
) -> None:
    server = timed_gateway(gateway_factory, openai_fake.url)
    openai_fake.plan.push("slow", delay=5.0)
    response, took = post(server, stream)
    assert_timed_out(response)
    assert READ_TIMEOUT_S <= took < READ_TIMEOUT_S + SLACK_S
    wait_until(lambda: openai_fake.plan.abandoned_requests == 1)  # the gateway hung up


def stream_arrivals(server: UvicornServer) -> list[tuple[float, bytes]]:
    """Each SSE event of a streamed chat with the time it reached the client."""
    arrivals: list[tuple[float, bytes]] = []
    pending = b""
    with client().stream("POST", server.url + CHAT, json=body(True), headers=auth()) as response:
        assert response.status_code == 200
        for data in response.iter_raw():
            pending += data
            *events, pending = pending.split(b"\n\n")
            arrivals += [(time.monotonic(), event) for event in events]
    return arrivals


@pytest.mark.parametrize(
    ("fault", "options"),
    [
        ("stall", {"after": 2}),  # nothing more after two chunks
        ("drip", {"after": 2, "delay": 0.05, "size": 4}),  # bytes, but never a whole event
    ],
)
def test_between_chunks_timeout(
    gateway_factory: GatewayFactory, openai_fake: Upstream, fault: str, options: dict[str, Any]
) -> None:
    server = timed_gateway(gateway_factory, openai_fake.url)
    openai_fake.plan.push(fault, **options)
    arrivals = stream_arrivals(server)
    assert len(arrivals) == 3
    (_, _), (second_at, _), (error_at, last) = arrivals
    error = orjson.loads(last.removeprefix(b"data: "))["error"]
    assert error["code"] == "upstream_timeout"
    # The data chunks may reach the client together; the error comes a read timeout later.
    assert READ_TIMEOUT_S * 0.8 <= error_at - second_at < READ_TIMEOUT_S + SLACK_S


def test_total_timeout_bounds_a_sync_answer_that_keeps_dripping(
    gateway_factory: GatewayFactory, openai_fake: Upstream
) -> None:
    server = timed_gateway(gateway_factory, openai_fake.url)
    # Eight bytes every 50 ms: never idle for a read timeout, never done within the total.
    openai_fake.plan.push("drip", delay=0.05, size=8)
    response, took = post(server, stream=False)
    assert_timed_out(response)
    assert TOTAL_TIMEOUT_S <= took < TOTAL_TIMEOUT_S + SLACK_S


def test_a_stream_has_no_total_deadline(
    gateway_factory: GatewayFactory, openai_fake: Upstream
) -> None:
    """total_timeout_s is for sync calls: a long generation that keeps delivering is fine."""
    server = timed_gateway(gateway_factory, openai_fake.url, total_timeout_s=0.2)
    openai_fake.plan.chunk_gap = 0.03
    openai_fake.plan.chunk_count = 15
    arrivals = stream_arrivals(server)
    assert arrivals[-1][1] == b"data: [DONE]"
    assert arrivals[-1][0] - arrivals[0][0] > 0.2


def raw_connection(server: UvicornServer, receive_buffer: int | None = None) -> socket.socket:
    sock = socket.socket()
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect(("127.0.0.1", server.port))
    return sock


def request_head(length: int) -> bytes:
    return (
        f"POST {CHAT} HTTP/1.1\r\nhost: gateway\r\nauthorization: {auth()['authorization']}\r\n"
        f"content-type: application/json\r\ncontent-length: {length}\r\n\r\n"
    ).encode()


def closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b""
    except OSError as error:  # nothing to read yet: still open; reset: closed
        return not isinstance(error, BlockingIOError)


@contextlib.contextmanager
def dribbling(sockets: list[socket.socket], data: bytes, tick: float) -> Iterator[None]:
    """Sends ``data`` on every socket one byte per ``tick`` from a thread; closes them after."""
    stop = threading.Event()

    def run() -> None:
        for position in range(len(data)):
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.send(data[position : position + 1])
            if stop.wait(tick):
                return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
        for sock in sockets:
            sock.close()


def test_slowloris_does_not_starve_a_normal_client(
    gateway_factory: GatewayFactory, openai_fake: Upstream
) -> None:
    server = gateway_factory(base_config(openai_fake.url))
    slow = [raw_connection(server) for _ in range(100)]
    payload = orjson.dumps(body(False, "local-chat"))
    with dribbling(slow, request_head(len(payload)) + payload, tick=0.02):
        for _ in range(5):
            started = time.monotonic()
            response = client().post(
                server.url + CHAT, json=body(False, "local-chat"), headers=auth()
            )
            assert response.status_code == 200
            assert time.monotonic() - started < 0.5 + SLACK_S
    wait_until(lambda: open_tcp_sockets(local_port=server.port) == 0)


def test_slowloris_is_cut_after_a_bounded_time(tmp_path: Path) -> None:
    settings = settings_from_dict({**base_config(), "storage": {"path": str(tmp_path)}}, TEST_ENV)
    # The gateway's own protocol (as gateway/cli.py serves it), with a short head deadline.
    protocol = deadline_protocol(header_timeout_s=0.5, body_timeout_s=0.5)
    with UvicornServer(create_app(settings), http=protocol) as server:
        silent, dribbler = raw_connection(server), raw_connection(server)
        with contextlib.closing(silent), dribbling([dribbler], request_head(10), tick=0.1):
            wait_until(lambda: closed_by_peer(silent) and closed_by_peer(dribbler), timeout=2)


def test_slow_bodies_do_not_take_every_concurrency_slot(gateway_factory: GatewayFactory) -> None:
    config = base_config()
    config["limits"] = {"max_concurrency": 4}
    server = gateway_factory(config)
    slow = [raw_connection(server) for _ in range(4)]
    # Whole heads, then the first bytes of bodies whose rest never comes.
    with dribbling(slow, request_head(200) + b'{"model": ', tick=0.001):
        wait_until(
            lambda: "beatra_inflight_requests 5.0" in client().get(server.url + "/metrics").text
        )
        response = client().post(server.url + CHAT, json=body(False, "local-chat"), headers=auth())
        assert response.status_code == 200, response.text


def rss_bytes() -> int:
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) * 1024  # reported in kB


def test_a_client_that_stops_reading_pins_bounded_memory(
    gateway_factory: GatewayFactory, openai_fake: Upstream
) -> None:
    server = gateway_factory(base_config(openai_fake.url))
    plan = openai_fake.plan
    plan.chunk_count = 20_000
    plan.chunk_padding = 16 * 1024  # 320 MB if it were all produced
    tasks_at_rest = server.task_count()
    rss_before = rss_bytes()
    payload = orjson.dumps(body(True))
    reader = raw_connection(server, receive_buffer=4096)
    try:
        reader.sendall(request_head(len(payload)) + payload)
        assert reader.recv(64).startswith(b"HTTP/1.1 200")  # and then it stops reading

        def stalled() -> bool:
            sent = plan.frames_sent
            time.sleep(0.2)
            return plan.frames_sent == sent

        wait_until(stalled)
        # Backpressure reached the upstream: it is blocked, not streaming into our memory.
        assert plan.frames_sent < plan.chunk_count // 4
        assert rss_bytes() - rss_before < 32 * 1024 * 1024  # measured: about 4 MB
        started = time.monotonic()
        other = client().post(server.url + CHAT, json=body(False), headers=auth(), timeout=5)
        assert other.status_code == 200 and time.monotonic() - started < 0.5 + SLACK_S
    finally:
        reader.close()
    wait_until(lambda: plan.cancelled_streams == 1)  # leaving cancels the upstream stream
    wait_until(lambda: server.task_count() == tasks_at_rest)
    wait_until(lambda: "beatra_open_streams 0.0" in client().get(server.url + "/metrics").text)
