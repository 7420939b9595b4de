"""The soak's mixed load: what one request of each kind sends, what it must get back, and the
workers that drive a fixed number of them against one gateway.

The mix (``MIX``) covers every path a long-running gateway sees: sync and streamed chat (with and
without ``stream_options.include_usage``), Idempotency-Key requests over a bounded pool of keys
(so after the first round they are replays), a wrong API key, an invalid body, an unknown model,
an upstream that answers 500, clients that hang up in the middle of a stream, and scrapes of
``/metrics`` and ``/v1/health``. Wrong keys and unknown model names are unique per request, so any
state the gateway keeps per presented value shows up as growth. Every answer is checked against
the status (and body) its kind must get; anything else is a problem, counted and sampled.

Used by bench/soak.py (the long run) and tests/server/test_soak.py (the CI run).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import orjson

DONE = b"data: [DONE]\n\n"
CHAT_PATH = "/v1/chat/completions"
MAX_PROBLEM_SAMPLES = 12

# Kind -> (weight out of sum(weights), expected status, expected error code or None).
MIX: dict[str, tuple[int, int, str | None]] = {
    "chat": (80, 200, None),
    "stream": (28, 200, None),
    "stream_usage": (20, 200, None),
    "idempotent": (20, 200, None),
    "bad_key": (10, 401, "invalid_api_key"),
    "bad_body": (10, 400, "invalid_request"),
    "unknown_model": (10, 404, "model_not_found"),
    "upstream_500": (10, 502, "upstream_error"),
    "hang_up": (10, 200, None),
    "metrics": (1, 200, None),
    "health": (1, 200, None),
}
_BAD_BODIES = (
    b"{not json",
    b"[]",
    b'{"model": "%s"}',  # no messages
    b'{"model": "%s", "messages": "hello"}',
    b'{"model": "%s", "messages": [{"role": "user", "content": "hi"}], "max_tokens": -1}',
)


@dataclass(frozen=True, slots=True)
class Target:
    """The gateway under load and the catalog models that give each kind its answer."""

    base_url: str
    api_key: str
    chat_model: str  # answers a chat.completion
    stream_model: str  # answers a short event stream ending with [DONE]
    failing_model: str  # its only upstream answers HTTP 500 (the gateway: 502 upstream_error)
    slow_stream_model: str  # streams slowly enough for a client to leave in the middle
    idempotency_keys: int = 1000  # the bounded pool of Idempotency-Key values
    run_tag: str = "soak"  # makes keys of different runs against one process distinct


@dataclass(slots=True)
class LoadResult:
    sent: int = 0
    seconds: float = 0.0
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)  # (kind, status); 0: none
    problems: Counter[str] = field(default_factory=Counter)  # kind -> wrong answers
    problem_samples: list[str] = field(default_factory=list)
    replays: int = 0  # answers marked Idempotent-Replayed

    @property
    def rps(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def add(self, other: LoadResult) -> None:
        self.sent += other.sent
        self.seconds += other.seconds
        self.statuses.update(other.statuses)
        self.problems.update(other.problems)
        room = MAX_PROBLEM_SAMPLES - len(self.problem_samples)
        self.problem_samples.extend(other.problem_samples[: max(0, room)])
        self.replays += other.replays


def schedule(seed: int = 7) -> list[str]:
    """One cycle of the mix, shuffled once: request ``i`` is of kind ``cycle[i % len(cycle)]``,
    so any run of ``len(cycle)`` consecutive requests has the exact proportions."""
    cycle = [kind for kind, (weight, _, _) in MIX.items() for _ in range(weight)]
    random.Random(seed).shuffle(cycle)
    return cycle


def chat_body(model: str, text: str, **extra: object) -> bytes:
    """A small chat request. ``max_tokens`` keeps answers short: where a model really generates
    text (the local one, in the CI test), the time goes to the gateway's work, not to writing."""
    fields = {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 8}
    return orjson.dumps({**fields, **extra})


class _Driver:
    def __init__(
        self, target: Target, session: aiohttp.ClientSession, result: LoadResult, cycle: list[str]
    ) -> None:
        self.t = target
        self.session = session
        self.result = result
        self.cycle_length = len(cycle)
        positions = [i for i, kind in enumerate(cycle) if kind == "idempotent"]
        self.idempotent_rank = {position: rank for rank, position in enumerate(positions)}
        self.auth = {"authorization": f"Bearer {target.api_key}"}
        self.json_headers = {**self.auth, "content-type": "application/json"}

    def idempotent_ordinal(self, number: int) -> int:
        """Which Idempotency-Key request (0, 1, 2, ...) request ``number`` is: keys then go
        round the whole pool in order (``number`` itself would hit only a few residues)."""
        cycles, position = divmod(number, self.cycle_length)
        return cycles * len(self.idempotent_rank) + self.idempotent_rank[position]

    def problem(self, kind: str, number: int, what: str) -> None:
        self.result.problems[kind] += 1
        if len(self.result.problem_samples) < MAX_PROBLEM_SAMPLES:
            self.result.problem_samples.append(f"#{number} {kind}: {what[:300]}")

    async def one(self, kind: str, number: int) -> None:
        """Send request ``number`` of ``kind`` and check its answer."""
        status = 0
        try:
            status, problem = await self._send(kind, number)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            problem = f"transport: {type(exc).__name__}: {exc}"
        self.result.statuses[(kind, status)] += 1
        if problem is not None:
            self.problem(kind, number, problem)

    async def _send(self, kind: str, number: int) -> tuple[int, str | None]:
        t = self.t
        base = t.base_url
        if kind in ("metrics", "health"):
            path = "/metrics" if kind == "metrics" else "/v1/health"
            async with self.session.get(base + path) as response:
                await response.read()
                wrong = None if response.status == 200 else f"HTTP {response.status}"
                return response.status, wrong
        headers = self.json_headers
        if kind == "chat":
            body = chat_body(t.chat_model, f"soak request {number}")
        elif kind in ("stream", "stream_usage"):
            extra: dict[str, object] = {"stream": True}
            if kind == "stream_usage":
                extra["stream_options"] = {"include_usage": True}
            body = chat_body(t.stream_model, f"soak stream {number}", **extra)
        elif kind == "idempotent":
            slot = self.idempotent_ordinal(number) % t.idempotency_keys
            body = chat_body(t.chat_model, f"idempotent request {slot}")
            headers = {**headers, "idempotency-key": f"{t.run_tag}-{slot}"}
        elif kind == "bad_key":
            body = chat_body(t.chat_model, "hi")
            headers = {"authorization": f"Bearer wrong-key-{number}"}
        elif kind == "bad_body":
            template = _BAD_BODIES[number % len(_BAD_BODIES)]
            body = template % t.chat_model.encode() if b"%s" in template else template
        elif kind == "unknown_model":
            body = chat_body(f"no-such-model-{number}", "hi")
        elif kind == "upstream_500":
            body = chat_body(t.failing_model, f"soak failing {number}")
        elif kind == "hang_up":
            return await self._hang_up(number)
        else:
            raise ValueError(f"unknown request kind {kind!r}")
        async with self.session.post(base + CHAT_PATH, data=body, headers=headers) as response:
            data = await response.read()
            if response.headers.get("idempotent-replayed") == "true":
                self.result.replays += 1
            return response.status, check_body(kind, response.status, data)

    async def _hang_up(self, number: int) -> tuple[int, str | None]:
        """Open a slow stream, read its first event, then drop the connection."""
        # No max_tokens: the stream must last long enough for the client to leave in the middle.
        text = f"soak hang-up {number}"
        messages = [{"role": "user", "content": text}]
        body = orjson.dumps(
            {"model": self.t.slow_stream_model, "messages": messages, "stream": True}
        )
        url = self.t.base_url + CHAT_PATH
        async with self.session.post(url, data=body, headers=self.json_headers) as response:
            if response.status != 200:
                return response.status, f"HTTP {response.status}: {await response.read()!r}"
            first = await response.content.readuntil(b"\n\n")
            response.close()  # closes the connection itself: the gateway sees the client leave
            if not first.startswith(b"data: {"):
                return response.status, f"first event {first!r}"
            return response.status, None


def check_body(kind: str, status: int, data: bytes) -> str | None:
    """What is wrong with an answer of the right status for ``kind`` (None: nothing)."""
    expected_status, expected_code = MIX[kind][1], MIX[kind][2]
    if status != expected_status:
        return f"HTTP {status}, expected {expected_status}: {data[:200]!r}"
    if kind in ("stream", "stream_usage"):
        if not data.endswith(DONE):
            return f"stream did not end with [DONE]: ...{data[-200:]!r}"
        if kind == "stream_usage" and b'"usage"' not in data:
            return "include_usage stream without a usage event"
        return None
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return f"not JSON: {data[:200]!r}"
    if expected_code is not None:
        code = parsed.get("error", {}).get("code") if isinstance(parsed, dict) else None
        return None if code == expected_code else f"error code {code!r}, expected {expected_code}"
    if not isinstance(parsed, dict) or parsed.get("object") != "chat.completion":
        return f"not a chat.completion: {data[:200]!r}"
    return None


async def drive(
    target: Target,
    requests: int,
    *,
    concurrency: int = 32,
    first_number: int = 0,
    max_seconds: float | None = None,
    sample_every: int = 0,
    on_sample: Callable[[int, float], None] | None = None,
    timeout_s: float = 30.0,
) -> LoadResult:
    """Send ``requests`` requests of the mix from ``concurrency`` workers; stop early at
    ``max_seconds``. ``on_sample(done, elapsed)`` runs after every ``sample_every`` answers."""
    result = LoadResult()
    cycle = schedule()
    next_number = first_number
    end_number = first_number + requests
    done = 0
    started = time.perf_counter()
    deadline = started + max_seconds if max_seconds is not None else None
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        driver = _Driver(target, session, result, cycle)

        async def worker() -> None:
            nonlocal next_number, done
            while next_number < end_number:
                if deadline is not None and time.perf_counter() >= deadline:
                    return
                number = next_number
                next_number += 1
                await driver.one(cycle[number % len(cycle)], number)
                done += 1
                if on_sample is not None and sample_every and done % sample_every == 0:
                    on_sample(done, time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.sent = done
    result.seconds = time.perf_counter() - started
    return result
