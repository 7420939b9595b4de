"""Switchable faults shared by the fake upstreams.

A test queues faults (``plan.push("status", status=503)``); each request to the fake takes the
next one, or ``ok`` when the queue is empty. The fakes record what they saw so tests can count
upstream calls and observe cancellations. The faults every fake plays alike (reset, slow,
status, malformed) are played by ``play_shared_fault``, streams by ``play_stream``: a fake
states only its provider's wire format (its error body, its cut-short JSON, its events).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

FAULTS = (
    "ok",  # a normal answer
    "status",  # HTTP ``status`` with the provider's error body (``headers`` e.g. Retry-After)
    "slow",  # wait ``delay`` seconds before answering normally
    "reset",  # abort the TCP connection before any header
    "malformed",  # 200 with a body that is not JSON (sync) / an event that is not JSON (stream)
    "cut",  # stream: send ``after`` chunks, then abort the connection
    "stall",  # stream: send ``after`` chunks, then send nothing more
    "no_done",  # stream: end cleanly but without the provider's end-of-stream marker
    "drip",  # stream: from chunk ``after`` on, write ``size`` bytes at a time, ``delay`` s apart
    "giant",  # stream: chunk ``after`` becomes one event padded to about ``size`` bytes
    "malformed_sse",  # stream: from chunk ``after`` on, the events lose their SSE framing
)
# The OpenAI fake also applies cut, stall, no_done, drip, giant and malformed_sse to sync
# answers (see ``openai_upstream``): a broken body instead of a broken stream.


@dataclass
class Fault:
    name: str = "ok"
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    after: int = 2
    message: str = "fake upstream failure"
    param: str | None = None  # status: the error body's ``param`` (OpenAI fake)
    size: int = 1  # drip: bytes per write; giant: bytes of the padded event or body


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any


class FaultPlan:
    """The queue of faults and the record of requests, safe to use from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Fault] = deque()
        self.requests: list[Recorded] = []
        self.cancelled_streams = 0
        self.completed_streams = 0
        self.abandoned_requests = 0  # slow answers whose client hung up while we waited
        self.chunk_gap = 0.0  # seconds between stream chunks
        self.chunk_count = 5  # content chunks per streamed answer
        self.chunk_padding = 0  # extra characters of content per chunk (long streams in bytes)
        self.frames_sent = 0  # stream events written (how far a stream got; backpressure)
        # Set by a test: every ``slow`` wait ends now (a request held until the test says so).
        self.release_slow = threading.Event()

    def push(self, name: str, times: int = 1, **options: Any) -> None:
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r}")
        with self._lock:
            for _ in range(times):
                self._queue.append(Fault(name=name, **options))

    def take(self) -> Fault:
        with self._lock:
            return self._queue.popleft() if self._queue else Fault()

    def record(self, path: str, headers: dict[str, str], body: Any) -> None:
        with self._lock:
            self.requests.append(Recorded(path, headers, body))

    def record_request(self, request: web.Request, body: Any) -> None:
        """Record ``request`` (its path, lower-cased headers and decoded ``body``)."""
        self.record(request.path, {k.lower(): v for k, v in request.headers.items()}, body)

    def note_stream_end(self, *, cancelled: bool) -> None:
        with self._lock:
            if cancelled:
                self.cancelled_streams += 1
            else:
                self.completed_streams += 1

    def note_frame(self) -> None:
        with self._lock:
            self.frames_sent += 1

    def note_abandoned(self) -> None:
        with self._lock:
            self.abandoned_requests += 1

    @property
    def calls(self) -> int:
        return len(self.requests)

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self.cancelled_streams = 0
            self.completed_streams = 0
            self.abandoned_requests = 0
            self.chunk_gap = 0.0
            self.chunk_count = 5
            self.chunk_padding = 0
            self.frames_sent = 0
            self.release_slow.clear()


async def wait_or_abandon(request: web.Request, plan: FaultPlan, delay: float) -> bool:
    """Sleep ``delay`` seconds in small steps (or until ``release_slow``); False (and noted) if
    the client hung up."""
    deadline = asyncio.get_running_loop().time() + delay
    while asyncio.get_running_loop().time() < deadline and not plan.release_slow.is_set():
        await asyncio.sleep(0.01)
        transport = request.transport
        if transport is None or transport.is_closing():
            plan.note_abandoned()
            return False
    return True


async def play_shared_fault(
    request: web.Request,
    plan: FaultPlan,
    fault: Fault,
    error: Callable[[Fault], web.Response],
    malformed: bytes | None = None,
) -> web.Response | None:
    """The faults every fake plays the same way, before its endpoint answers: ``reset`` aborts
    the connection, ``slow`` waits (and answers nothing if the client left meanwhile),
    ``status`` answers with the provider's own error body (``error``), and ``malformed``, when
    the fake gives its bytes, a 200 whose JSON is cut short. None: the endpoint answers."""
    if fault.name == "reset":
        assert request.transport is not None
        request.transport.abort()
        return web.Response()
    if fault.name == "slow" and not await wait_or_abandon(request, plan, fault.delay):
        return web.Response()
    if fault.name == "status":
        return error(fault)
    if fault.name == "malformed" and malformed is not None:
        return web.Response(body=malformed, content_type="application/json")
    return None


# The faults that strike at frame ``after`` exactly (``malformed_sse`` holds from there on).
STREAM_FAULTS = ("cut", "stall", "drip", "giant", "malformed")


def client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def drip(
    request: web.Request, response: web.StreamResponse, data: bytes, fault: Fault
) -> bool:
    """Write ``data`` ``fault.size`` bytes at a time, ``fault.delay`` s apart; False if the
    client hung up first."""
    step = max(1, fault.size)
    for start in range(0, len(data), step):
        if client_gone(request):
            return False
        try:
            await response.write(data[start : start + step])
        except ConnectionError:
            return False
        await asyncio.sleep(fault.delay)
    return True


def unframed(frame: bytes) -> bytes:
    """An SSE frame without its field names: bare JSON lines, as an NDJSON server sends."""
    return b"\n".join(line.partition(b": ")[2] for line in frame.split(b"\n"))


def padded(frame: bytes, size: int) -> bytes:
    """An SSE frame whose JSON data gains a ``padding`` field of ``size`` bytes."""
    head, _, tail = frame.rpartition(b"}")
    return head + b', "padding": "' + b"x" * size + b'"}' + tail


async def play_stream(
    request: web.Request,
    response: web.StreamResponse,
    frames: Iterable[bytes],
    broken_frame: bytes,
    *,
    fault: Fault,
    plan: FaultPlan,
) -> web.StreamResponse:
    """Write pre-encoded SSE frames, applying a stream fault at frame ``fault.after``
    (``cut``, ``stall``, ``drip``, ``giant``, ``malformed_sse``, or ``malformed``:
    ``broken_frame`` instead), and note how it ended."""
    remaining = iter(frames)
    try:
        for position, frame in enumerate(remaining):
            out = frame
            if fault.name == "malformed_sse" and position >= fault.after:
                out = unframed(frame)
            elif position == fault.after and fault.name in STREAM_FAULTS:
                if fault.name == "cut":
                    assert request.transport is not None
                    request.transport.abort()
                    return response
                if fault.name == "stall":
                    await wait_or_abandon(request, plan, 60.0)
                    return response
                if fault.name == "drip":
                    if not await drip(request, response, b"".join([frame, *remaining]), fault):
                        plan.note_stream_end(cancelled=True)
                        return response
                    break
                out = broken_frame if fault.name == "malformed" else padded(frame, fault.size)
            await response.write(out)
            plan.note_frame()
            if plan.chunk_gap:
                await asyncio.sleep(plan.chunk_gap)
        await response.write_eof()
    except (ConnectionError, asyncio.CancelledError):
        # ConnectionError: reset while writing, or "connection lost" while blocked on drain.
        plan.note_stream_end(cancelled=True)
        raise
    plan.note_stream_end(cancelled=False)
    return response
