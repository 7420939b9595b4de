"""The benchmark's streaming client: times chat streams as a client sees them (asyncio + aiohttp).

Two modes, each printing one JSON object on stdout:

``sequential``  one stream at a time, alternating between the named targets (A/B interleaving,
                so drift hits every target alike): time to the first ``data:`` event (TTFT) and
                to ``[DONE]`` (total), per target.
``concurrent``  many streams at once against one target, their starts spread evenly over
                ``--ramp-ms``: how many ended with ``[DONE]`` and every content chunk, how many
                were dropped (and why), and the gaps between consecutive content events minus the
                upstream's fixed gap (the added inter-chunk delay).

Every stream has a deadline (``--timeout``), so a run always ends. Run pinned to CPU 1.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

import aiohttp
import orjson
import uvloop

from bench.stats import summary

DONE = b"[DONE]"


@dataclass(slots=True)
class StreamResult:
    status: int = 0
    ttft: float | None = None
    total: float | None = None
    arrivals: list[float] = field(default_factory=list)  # content events, seconds from start
    done: bool = False
    error: str | None = None

    def completed(self, chunks: int) -> bool:
        return self.status == 200 and self.done and len(self.arrivals) == chunks and not self.error

    def why_dropped(self, chunks: int) -> str:
        if self.error:
            return self.error
        if self.status != 200:
            return f"http_{self.status}"
        if not self.done:
            return "no_done"
        return f"chunks_{len(self.arrivals)}_of_{chunks}"


def request_body(model: str) -> bytes:
    return orjson.dumps(
        {
            "model": model,
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "Count to twenty, one number per chunk."},
            ],
            "max_tokens": 64,
            "stream": True,
        }
    )


HEADERS = {"authorization": "Bearer sk-bench-key", "content-type": "application/json"}


async def one_stream(
    session: aiohttp.ClientSession, url: str, body: bytes, deadline_s: float
) -> StreamResult:
    result = StreamResult()
    started = time.perf_counter()
    try:
        async with asyncio.timeout(deadline_s):
            async with session.post(url, data=body, headers=HEADERS) as response:
                result.status = response.status
                if response.status != 200:
                    await response.read()
                    return result
                async for line in response.content:
                    if not line.startswith(b"data:"):
                        continue
                    now = time.perf_counter() - started
                    if result.ttft is None:
                        result.ttft = now
                    if line[5:].strip() == DONE:
                        result.done = True
                        result.total = now
                        break
                    if line.startswith(b'data: {"error"'):
                        result.error = "error_event"
                        break
                    result.arrivals.append(now)
    except TimeoutError:
        result.error = "timeout"
    except aiohttp.ClientError as exc:
        result.error = type(exc).__name__
    except OSError as exc:
        result.error = type(exc).__name__
    return result


async def sequential(targets: list[tuple[str, str]], model: str, args: argparse.Namespace) -> Any:
    body = request_body(model)
    sessions = {
        name: aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=4)) for name, _ in targets
    }
    results: dict[str, list[StreamResult]] = {name: [] for name, _ in targets}
    try:
        for index in range(args.warmup + args.streams):
            for name, url in targets:
                result = await one_stream(sessions[name], url, body, args.timeout)
                if index >= args.warmup:
                    results[name].append(result)
    finally:
        for session in sessions.values():
            await session.close()
    report: dict[str, Any] = {}
    for name, items in results.items():
        good = [r for r in items if r.completed(args.chunks)]
        bad = [r for r in items if not r.completed(args.chunks)]
        report[name] = {
            "streams": len(items),
            "completed": len(good),
            "dropped": dict(Counter(r.why_dropped(args.chunks) for r in bad)),
            "ttft_ms": summary([r.ttft * 1000 for r in good if r.ttft is not None]),
            "total_ms": summary([r.total * 1000 for r in good if r.total is not None]),
        }
    return report


class LeanStream(asyncio.Protocol):
    """One stream over a raw connection: the whole client cost is a few bytes operations per read.

    The response is split on the blank line that ends every SSE event; HTTP chunk-size lines sit
    between events and are skipped by looking for ``data:`` inside each piece. Every content event
    of one read gets that read's arrival time, as a client application would see it.
    """

    def __init__(self, request: bytes, started: float, result: StreamResult) -> None:
        self.request = request
        self.started = started
        self.result = result
        self.buffer = b""
        self.head_done = False
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter() - self.started
        result = self.result
        buffer = self.buffer + data
        if not self.head_done:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            result.status = int(buffer[9:12])
            self.head_done = True
            buffer = buffer[end + 4 :]
            if result.status != 200:
                self.finish()
                return
        while (end := buffer.find(b"\n\n")) >= 0:
            piece, buffer = buffer[:end], buffer[end + 2 :]
            at = piece.find(b"data:")
            if at < 0:
                continue
            if result.ttft is None:
                result.ttft = now
            payload = piece[at + 5 :].strip()
            if payload == DONE:
                result.done = True
                result.total = now
                self.finish()
                return
            if payload.startswith(b'{"error"'):
                result.error = "error_event"
                self.finish()
                return
            result.arrivals.append(now)
        self.buffer = buffer

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done():
            self.result.error = "closed_early" if exc is None else type(exc).__name__
            self.finished.set_result(None)

    def finish(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if not self.finished.done():
            self.finished.set_result(None)


def raw_request(url: str, body: bytes) -> tuple[str, int, bytes]:
    """Host, port and the bytes of a keep-alive-free HTTP/1.1 POST of ``body`` to ``url``."""
    parsed = urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    head = (
        f"POST {parsed.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: {HEADERS['authorization']}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return host, port, head.encode() + body


async def lean_stream(host: str, port: int, request: bytes, deadline_s: float) -> StreamResult:
    loop = asyncio.get_running_loop()
    result = StreamResult()
    started = time.perf_counter()
    try:
        async with asyncio.timeout(deadline_s):
            _, protocol = await loop.create_connection(
                lambda: LeanStream(request, started, result), host, port
            )
            try:
                await protocol.finished
            finally:
                protocol.finish()
    except TimeoutError:
        result.error = "timeout"
    except OSError as exc:
        result.error = type(exc).__name__
    return result


async def concurrent(url: str, model: str, args: argparse.Namespace) -> Any:
    """Many streams at once through the lean client (aiohttp's client costs about 1 ms of CPU to
    open a stream and tens of microseconds per event: at 1,000 streams it, not the path under
    test, would set the gaps)."""
    host, port, request = raw_request(url, request_body(model))
    gap = args.gap_ms / 1000.0

    async def delayed(index: int) -> StreamResult:
        await asyncio.sleep(index * args.ramp_ms / 1000.0 / args.streams)
        return await lean_stream(host, port, request, args.timeout)

    started = time.perf_counter()
    results = await asyncio.gather(*(delayed(i) for i in range(args.streams)))
    wall = time.perf_counter() - started
    good = [r for r in results if r.completed(args.chunks)]
    bad = [r for r in results if not r.completed(args.chunks)]
    added_gaps = [
        (later - earlier - gap) * 1000
        for r in good
        for earlier, later in zip(r.arrivals, r.arrivals[1:], strict=False)
    ]
    return {
        "streams": len(results),
        "completed": len(good),
        "dropped": len(bad),
        "drop_reasons": dict(Counter(r.why_dropped(args.chunks) for r in bad)),
        "wall_s": wall,
        "ttft_ms": summary([r.ttft * 1000 for r in good if r.ttft is not None]),
        "total_ms": summary([r.total * 1000 for r in good if r.total is not None]),
        "added_gap_ms": summary(added_gaps),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["sequential", "concurrent"])
    parser.add_argument(
        "--target", action="append", required=True, help="NAME=URL (sequential: repeat it)"
    )
    parser.add_argument("--model", required=True)
    parser.add_argument("--chunks", type=int, required=True, help="content events per stream")
    parser.add_argument("--gap-ms", type=float, required=True, help="the upstream's fixed gap")
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5, help="sequential: unreported streams")
    parser.add_argument("--ramp-ms", type=float, default=50.0, help="concurrent: start spread")
    parser.add_argument("--timeout", type=float, default=60.0, help="deadline of one stream")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    targets = [tuple(item.split("=", 1)) for item in args.target]
    if any(len(t) != 2 for t in targets):
        print("--target must be NAME=URL", file=sys.stderr)
        return 2
    pairs = [(t[0], t[1]) for t in targets]
    if args.mode == "sequential":
        report = uvloop.run(sequential(pairs, args.model, args))
    else:
        report = uvloop.run(concurrent(pairs[0][1], args.model, args))
    sys.stdout.buffer.write(orjson.dumps(report) + b"\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
