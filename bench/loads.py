"""The benchmark's load drivers as the runner calls them: wrk with bench/wrk_post.lua for request
throughput and latency, and bench/stream_client.py for streams. Each run is bounded in time and
pinned to CPU 1, and its result is parsed into plain data."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
LOAD_CPU = 1
_BENCH_LINE = re.compile(r"^BENCH (.*)$", re.MULTILINE)


@dataclass
class WrkResult:
    requests: int
    seconds: float
    errors: int  # connect, read, write and timeout errors
    non_2xx: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    cpu_seconds: dict[str, float]  # CPU time used during the run, by watched process name
    cpu0_other_pct: float = 0.0  # CPU 0 busy in user/system for processes not under test
    cpu0_steal_pct: float = 0.0  # CPU 0 time taken by the hypervisor

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def run_wrk(
    url: str,
    connections: int,
    duration_s: float,
    *,
    model: str,
    stream: bool = False,
    idempotency_key: bool = False,
    api: str = "chat",
) -> WrkResult:
    """One wrk run; the caller measures process CPU around it."""
    command = [
        "taskset",
        "-c",
        str(LOAD_CPU),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--timeout",
        "10s",
        "-s",
        str(BENCH_DIR / "wrk_post.lua"),
        url,
        "--",
        model,
        "1" if stream else "0",
        "1" if idempotency_key else "0",
        api,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=duration_s + 60, check=False
    )
    match = _BENCH_LINE.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    values = {k: int(v) for k, v in (item.split("=") for item in match.group(1).split())}
    return WrkResult(
        requests=values["requests"],
        seconds=values["duration_us"] / 1e6,
        errors=values["connect"] + values["read"] + values["write"] + values["timeout"],
        non_2xx=values["status"],
        p50_ms=values["p50_us"] / 1000,
        p90_ms=values["p90_us"] / 1000,
        p99_ms=values["p99_us"] / 1000,
        max_ms=values["max_us"] / 1000,
        cpu_seconds={},
    )


def run_stream_client(args: list[str], deadline_s: float) -> Any:
    """Run bench/stream_client.py with ``args``; its JSON report."""
    command = ["taskset", "-c", str(LOAD_CPU), sys.executable, "-m", "bench.stream_client", *args]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=deadline_s, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"stream client failed ({done.returncode}): {done.stderr.decode()}")
    return orjson.loads(done.stdout)
