"""The upstream fault matrix: every way an upstream can fail, sync and streamed, through a real
gateway whose model has a backup deployment behind the failing one.

Each cell checks what the client sees (status, envelope code and ``retryable`` as docs/api.md's
table says; a stream that fails after its first byte ends with one ``data: {"error": ...}`` event
and no ``[DONE]``), whether the backup was tried (retryable failures before the first byte fall
back; the client's own mistakes and anything after the first byte never do), what the metrics and
the access log say, and that nothing leaks: the gateway's asyncio tasks, its sockets to the
upstreams and the client connections go back to their baseline, and both upstreams still serve.
"""

from __future__ import annotations

import functools
import socket
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import CapturedLogs, GatewayFactory, Upstream, auth, base_config, wait_until
from tests.fakes.server import UvicornServer, open_tcp_sockets

CHAT = "/v1/chat/completions"
READ_TIMEOUT_S = 0.25
TOTAL_TIMEOUT_S = 0.5
MAX_RESPONSE_BYTES = 48 * 1024
# The error table of docs/api.md, for the codes an upstream failure can become:
# (HTTP status, retryable).
CONTRACT = {
    "invalid_request": (400, False),
    "rate_limited": (429, True),
    "upstream_error": (502, True),
    "upstream_timeout": (504, True),
}
REFUSED = "refused"  # not a fault of the fake: the primary's base_url is a port nobody listens on


@dataclass(frozen=True)
class Expect:
    code: str  # the envelope's code (stream: of the error event when it comes after data)
    primary_attempts: int
    backup_attempts: int  # 0: no fallback
    outcome: str  # beatra_upstream_requests_total outcome of every one of those attempts
    chunks_before_error: int | None = None  # stream only: the failure came after the first byte

    @property
    def status(self) -> int:
        return 200 if self.chunks_before_error is not None else CONTRACT[self.code][0]


def failed_over(code: str, outcome: str, tries: int = 2) -> Expect:
    """Failed before the first byte, on the primary and then on the backup."""
    return Expect(code, tries, tries, outcome)


REJECTED = Expect("invalid_request", 1, 0, "client_error")  # never retried, never elsewhere


def broke_mid_stream(code: str, chunks: int = 2) -> Expect:
    """After the first byte: the answer is under way, so no retry and no fallback."""
    return Expect(code, 1, 0, "ok", chunks_before_error=chunks)


@dataclass(frozen=True)
class Row:
    name: str
    fault: str
    options: dict[str, Any]
    sync: Expect | None
    stream: Expect | None


SERVER_ERROR = failed_over("upstream_error", "server_error")
# A timed-out call may still run upstream: not repeated on its deployment, but fallen back from.
TIMED_OUT = failed_over("upstream_timeout", "timeout", tries=1)
AUTH_FAILED = failed_over("upstream_error", "auth_error", tries=1)  # rests at once, falls back
RATE_LIMITED = failed_over("rate_limited", "rate_limited")
MID_ERROR = broke_mid_stream("upstream_error")
MID_TIMEOUT = broke_mid_stream("upstream_timeout")
DRIP = {"after": 2, "delay": 0.05, "size": 8}  # each write well within the read timeout
GIANT = {"after": 2, "size": 2 * MAX_RESPONSE_BYTES}
ROWS = [
    Row("http_400", "status", {"status": 400}, REJECTED, REJECTED),
    Row("http_401", "status", {"status": 401}, AUTH_FAILED, AUTH_FAILED),
    Row("http_403", "status", {"status": 403}, AUTH_FAILED, AUTH_FAILED),
    Row("http_404", "status", {"status": 404}, SERVER_ERROR, SERVER_ERROR),
    Row("http_422", "status", {"status": 422}, REJECTED, REJECTED),
    Row(
        "http_429",
        "status",
        {"status": 429, "headers": {"retry-after-ms": "10"}},
        *[RATE_LIMITED] * 2,
    ),
    Row("http_500", "status", {"status": 500}, SERVER_ERROR, SERVER_ERROR),
    Row("http_502", "status", {"status": 502}, SERVER_ERROR, SERVER_ERROR),
    Row("http_503", "status", {"status": 503}, SERVER_ERROR, SERVER_ERROR),
    Row("http_504", "status", {"status": 504}, TIMED_OUT, TIMED_OUT),
    Row("connection_refused", REFUSED, {}, SERVER_ERROR, SERVER_ERROR),
    Row("reset_before_headers", "reset", {}, SERVER_ERROR, SERVER_ERROR),
    Row("reset_mid_body", "cut", {"after": 2}, SERVER_ERROR, MID_ERROR),
    Row("reset_before_first_event", "cut", {"after": 0}, None, SERVER_ERROR),
    Row("stalled_before_headers", "slow", {"delay": 5.0}, TIMED_OUT, TIMED_OUT),
    Row("stalled_mid_body", "stall", {"after": 2}, TIMED_OUT, MID_TIMEOUT),
    Row("slow_drip", "drip", DRIP, TIMED_OUT, MID_TIMEOUT),
    Row("malformed_json", "malformed", {"after": 2}, SERVER_ERROR, MID_ERROR),
    Row("malformed_sse", "malformed_sse", {"after": 0}, SERVER_ERROR, SERVER_ERROR),
    Row("no_done", "no_done", {}, SERVER_ERROR, broke_mid_stream("upstream_error", chunks=7)),
    Row("giant", "giant", GIANT, SERVER_ERROR, MID_ERROR),
]


@dataclass(frozen=True)
class Cell:
    row: Row
    stream: bool
    expect: Expect


CELLS = [
    pytest.param(Cell(row, mode == "stream", expect), id=f"{row.name}-{mode}")
    for row in ROWS
    for mode, expect in (("sync", row.sync), ("stream", row.stream))
    if expect is not None
]


def closed_port() -> int:
    with socket.socket() as probe:  # bound, never listening, closed: connections are refused
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def matrix_config(primary_url: str, backup_url: str) -> dict[str, Any]:
    """``gpt-test`` tries the primary first and the backup second (weights, with a fixed seed);
    ``gpt-primary`` and ``gpt-backup`` reach one upstream each, through the same pools."""
    config = base_config(primary_url)
    config["providers"]["openai"].update(
        read_timeout_s=READ_TIMEOUT_S,
        total_timeout_s=TOTAL_TIMEOUT_S,
        connect_timeout_s=1.0,
        options={"max_response_bytes": MAX_RESPONSE_BYTES},
    )
    config["providers"]["backup"] = dict(config["providers"]["openai"], base_url=backup_url + "/v1")
    config["models"]["gpt-test"] = {
        "deployments": [
            {"provider": "openai", "model": "primary", "weight": 1000},
            {"provider": "backup", "model": "secondary", "weight": 0.001},
        ]
    }
    config["models"]["gpt-primary"] = {"provider": "openai", "model": "primary"}
    config["models"]["gpt-backup"] = {"provider": "backup", "model": "secondary"}
    return config


@functools.cache
def client() -> httpx.Client:
    """One client for every cell (making one costs more than a request); no keep-alive, so a
    cell's connections to the gateway are closed when its requests end."""
    return httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0))


def chat(server: UvicornServer, model: str, stream: bool) -> httpx.Response:
    body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    with client().stream("POST", server.url + CHAT, json=body, headers=auth()) as response:
        response.read()
    return response


Counts = dict[tuple[str, ...], float]


def counters(server: UvicornServer) -> Counts:
    """Counters keyed (upstream, provider, outcome), (http, status), (fallbacks,); a gauge."""
    found: Counts = {}
    text = client().get(server.url + "/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "beatra_upstream_requests_total":
                key: tuple[str, ...] = ("upstream", labels["provider"], labels["outcome"])
            elif sample.name == "beatra_http_requests_total" and labels["route"] == CHAT:
                key = ("http", labels["status"])
            elif sample.name == "beatra_fallbacks_total":
                key = ("fallbacks",)
            elif sample.name == "beatra_open_streams":
                key = ("open_streams",)
            else:
                continue
            found[key] = found.get(key, 0.0) + sample.value
    return found


def moved(before: Counts, after: Counts) -> Counts:
    keys = (set(before) | set(after)) - {("open_streams",)}
    deltas = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in keys}
    return {key: delta for key, delta in deltas.items() if delta}


def expected_moves(expect: Expect) -> Counts:
    moves: Counts = {("http", str(expect.status)): 1.0}
    moves[("upstream", "openai", expect.outcome)] = float(expect.primary_attempts)
    if expect.backup_attempts:
        moves[("upstream", "backup", expect.outcome)] = float(expect.backup_attempts)
        moves[("fallbacks",)] = 1.0
    return moves


def check_answer(response: httpx.Response, expect: Expect) -> None:
    request_id = response.headers["x-request-id"]
    status, retryable = CONTRACT[expect.code]
    if expect.chunks_before_error is None:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/json"
        assert b"data:" not in response.content
        error = response.json()["error"]
        if expect.code == "rate_limited":
            assert int(response.headers["retry-after"]) >= 1
    else:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        blocks = [block for block in response.content.split(b"\n\n") if block]
        assert all(block.startswith(b"data: ") for block in blocks), response.content[:300]
        *chunks, last = [orjson.loads(block[6:]) for block in blocks]  # [DONE] would not parse
        assert len(chunks) == expect.chunks_before_error
        assert {(c["object"], c["model"]) for c in chunks} == {
            ("chat.completion.chunk", "gpt-test")
        }
        error = last["error"]
    assert error["code"] == expect.code
    assert error["retryable"] is retryable
    assert error["request_id"] == request_id


def access_line(logs: CapturedLogs, request_id: str) -> dict[str, Any]:
    def mine() -> list[dict[str, Any]]:
        lines = logs.lines()
        return [x for x in lines if x.get("event") == "request" and x["request_id"] == request_id]

    wait_until(lambda: bool(mine()))  # written just after the response ends
    return mine()[0]


@pytest.mark.parametrize("cell", CELLS)
def test_fault_matrix(
    gateway_factory: GatewayFactory,
    openai_fake: Upstream,
    openai_backup: Upstream,
    logs: CapturedLogs,
    cell: Cell,
) -> None:
    row, expect = cell.row, cell.expect
    primary_port = closed_port() if row.fault == REFUSED else int(openai_fake.url.rsplit(":")[-1])
    backup_port = int(openai_backup.url.rsplit(":")[-1])
    server = gateway_factory(
        matrix_config(f"http://127.0.0.1:{primary_port}", openai_backup.url), seed=1
    )
    tasks_at_rest = server.task_count()
    warm = ["gpt-backup"] if row.fault == REFUSED else ["gpt-primary", "gpt-backup"]
    for model in warm:  # one idle pooled connection to each live upstream
        assert chat(server, model, stream=False).status_code == 200
    pooled = {port: open_tcp_sockets(remote_port=port) for port in (primary_port, backup_port)}
    calls = (openai_fake.plan.calls, openai_backup.plan.calls)
    before = counters(server)

    if expect.chunks_before_error is not None:
        # Time for the first chunks to be read before the fault strikes: TCP may otherwise
        # deliver the reset first and discard them, turning the cell into a different one.
        openai_fake.plan.chunk_gap = 0.05
    if row.fault == REFUSED:
        openai_backup.plan.push("reset", times=expect.backup_attempts)
    else:
        openai_fake.plan.push(row.fault, times=expect.primary_attempts, **row.options)
        if expect.backup_attempts:
            openai_backup.plan.push(row.fault, times=expect.backup_attempts, **row.options)
    response = chat(server, "gpt-test", stream=cell.stream)

    check_answer(response, expect)
    if row.fault != REFUSED:
        assert openai_fake.plan.calls - calls[0] == expect.primary_attempts
    assert openai_backup.plan.calls - calls[1] == expect.backup_attempts
    line = access_line(logs, response.headers["x-request-id"])
    assert (line["status"], line["error_code"]) == (expect.status, expect.code)
    assert line["attempts"] == expect.primary_attempts + expect.backup_attempts
    after: Counts = {}

    def counted() -> bool:
        after.update(counters(server))
        return moved(before, after) == expected_moves(expect)

    wait_until(counted, timeout=3)
    assert after[("open_streams",)] == 0

    # Nothing leaks: tasks, sockets to the upstreams and client connections return to rest.
    wait_until(lambda: server.task_count() == tasks_at_rest, timeout=3)
    wait_until(lambda: all(open_tcp_sockets(remote_port=p) <= n for p, n in pooled.items()), 3)
    wait_until(lambda: open_tcp_sockets(local_port=server.port) == 0, timeout=3)
    for model in warm:  # and the pools still serve
        assert chat(server, model, stream=cell.stream).status_code == 200
