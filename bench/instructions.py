"""User-space instructions per request, for judging hot-path changes on a noisy machine.

Wall-clock throughput on a shared VM moves with the neighbours (hypervisor steal, other
processes); the number of instructions a process retires per request does not. This runs the
benchmark's floor and gateway (bench/stack.py: nginx upstream, CPU pinning, the full-feature
gateway config), and the floor on the gateway's own client (bench/floor_lean.py), under
``perf stat -e instructions:u`` while wrk drives c=32 for a fixed time, and prints instructions
per request for JSON and SSE. ``perf`` comes from Debian's linux-perf.

    python -m bench.instructions [--duration 8]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.loads import ROOT, run_wrk
from bench.procs import spawn, wait_serving
from bench.runner import parse_args as bench_options
from bench.stack import CHAT_PATH, FLOOR_PORT, GATEWAY_PORT, NGINX_PORT, SUBJECT_CPU, Stack

LEAN_FLOOR_PORT = 18184

TARGETS = (
    ("floor", FLOOR_PORT, CHAT_PATH, "bench-json", False),
    ("lean-floor", LEAN_FLOOR_PORT, CHAT_PATH, "bench-json", False),
    ("gateway", GATEWAY_PORT, CHAT_PATH, "bench-json", False),
    ("floor-sse", FLOOR_PORT, "/stream" + CHAT_PATH, "bench-sse", True),
    ("lean-floor-sse", LEAN_FLOOR_PORT, "/stream" + CHAT_PATH, "bench-sse", True),
    ("gateway-sse", GATEWAY_PORT, CHAT_PATH, "bench-sse", True),
)


def measure(pid: int, url: str, model: str, stream: bool, duration_s: float) -> tuple[int, int]:
    """(instructions, requests) of process ``pid`` over one wrk run against ``url``."""
    perf = subprocess.Popen(
        ["perf", "stat", "-x,", "-e", "instructions:u", "-p", str(pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        result = run_wrk(url, 32, duration_s, model=model, stream=stream)
    finally:
        perf.send_signal(2)  # SIGINT: perf prints its counts and exits
        _, err = perf.communicate(timeout=30)
    if result.non_2xx or result.errors:
        # An error answer is cheaper than a proxied one: counting it would flatter the gateway.
        raise SystemExit(
            f"bench.instructions: {url} gave {result.non_2xx} non-2xx answers and "
            f"{result.errors} socket errors in {result.requests} requests"
        )
    count = next(
        int(line.split(",")[0])
        for line in err.decode().splitlines()
        if "instructions" in line and line.split(",")[0].isdigit()
    )
    return count, result.requests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run")
    args = parser.parse_args(argv)
    if shutil.which("perf") is None:
        print(
            "bench.instructions: perf is not installed (apt-get install linux-perf)",
            file=sys.stderr,
        )
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="beatra-instr-"))
    logs = tmp / "logs"
    logs.mkdir()
    stack = Stack(bench_options(["--quick"]), tmp, logs)
    try:
        stack.start_upstreams()
        gateway, _ = stack.start_gateway(stack.gateway_config(), 0)
        lean = spawn(
            "lean-floor",
            [
                sys.executable,
                "-m",
                "bench.floor_lean",
                "--port",
                str(LEAN_FLOOR_PORT),
                "--upstream",
                f"http://127.0.0.1:{NGINX_PORT}",
            ],
            cpu=SUBJECT_CPU,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        stack.procs.append(lean)
        wait_serving(lean, LEAN_FLOOR_PORT, "/", want=None, deadline_s=15)
        assert stack.floor is not None
        pids = {"floor": stack.floor.pid, "lean-floor": lean.pid, "gateway": gateway.pid}
        print("| load | instructions per request | requests |\n|---|---:|---:|")
        for name, port, path, model, stream in TARGETS:
            url = f"http://127.0.0.1:{port}{path}"
            run_wrk(url, 32, 2, model=model, stream=stream)  # warm-up
            count, requests = measure(
                pids[name.removesuffix("-sse")], url, model, stream, args.duration
            )
            print(
                f"| {name} | {count / max(1, requests) / 1000:,.0f}k | {requests:,} |", flush=True
            )
    finally:
        stack.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
