"""User-space instructions per request, for judging hot-path changes on a noisy machine.

Wall-clock throughput on a shared VM moves with the neighbours (hypervisor steal, other
processes); the number of instructions a process retires per request does not. This runs the
benchmark's floor and gateway (bench/stack.py: nginx upstream, CPU pinning, the full-feature
gateway config), and the floor on the gateway's own client (bench/floor_lean.py), under
``perf stat -e instructions:u`` while wrk drives c=32 for a fixed time, and prints instructions
per request for JSON and SSE. ``perf`` comes from Debian's linux-perf.

Where the machine has no hardware counters (many VMs: ``perf`` reports ``<not supported>``),
``--counter callgrind`` (chosen by ``auto``) runs the three measured servers under valgrind's
callgrind with instrumentation off, switches it on only around each measured wrk run
(``callgrind_control -i on/off``) and reads the run's instruction total from a dump. Callgrind
counts the same user-space instructions, but the servers run some 50x slower, so use it to
compare two versions of the code on one machine, at the same settings, never against perf's
figures. The default there is c=8 for 10 s.

``gateway-redis`` is the same gateway with ``state.backend = "redis"`` (rate limits, cooldowns
and idempotency in a local ``redis-server`` on the load's core, no persistence), run as a
second process beside the first; it is measured when ``redis-server`` is installed.

    python -m bench.instructions [--duration 8] [--counter auto|perf|callgrind]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import procs
from bench.loads import ROOT, WrkResult, run_wrk
from bench.peers import REDIS_GATEWAY_PORT, start_redis_gateway
from bench.procs import http_status, spawn, wait_serving
from bench.runner import parse_args as bench_options
from bench.stack import CHAT_PATH, FLOOR_PORT, GATEWAY_PORT, NGINX_PORT, SUBJECT_CPU, Stack

LEAN_FLOOR_PORT = 18184
RESPONSES_PATH = "/v1/responses"
TARGETS = (
    ("floor", FLOOR_PORT, CHAT_PATH, "bench-json", False),
    ("lean-floor", LEAN_FLOOR_PORT, CHAT_PATH, "bench-json", False),
    ("gateway", GATEWAY_PORT, CHAT_PATH, "bench-json", False),
    ("gateway-redis", REDIS_GATEWAY_PORT, CHAT_PATH, "bench-json", False),
    ("gateway-responses", GATEWAY_PORT, RESPONSES_PATH, "bench-json", False),
    ("floor-sse", FLOOR_PORT, "/stream" + CHAT_PATH, "bench-sse", True),
    ("lean-floor-sse", LEAN_FLOOR_PORT, "/stream" + CHAT_PATH, "bench-sse", True),
    ("gateway-sse", GATEWAY_PORT, CHAT_PATH, "bench-sse", True),
)


@dataclass(frozen=True)
class Load:
    """One measured wrk run."""

    url: str
    model: str
    stream: bool
    duration_s: float
    connections: int
    api: str = "chat"

    def run(self) -> WrkResult:
        return run_wrk(
            self.url,
            self.connections,
            self.duration_s,
            model=self.model,
            stream=self.stream,
            api=self.api,
        )


def measure(pid: int, load: Load) -> tuple[int, int]:
    """(instructions, requests) of process ``pid`` over one wrk run."""
    perf = subprocess.Popen(
        ["perf", "stat", "-x,", "-e", "instructions:u", "-p", str(pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        result = load.run()
    finally:
        perf.send_signal(2)  # SIGINT: perf prints its counts and exits
        _, err = perf.communicate(timeout=30)
    refused(result, load.url)
    count = next(
        int(line.split(",")[0])
        for line in err.decode().splitlines()
        if "instructions" in line and line.split(",")[0].isdigit()
    )
    return count, result.requests


def refused(result: WrkResult, url: str) -> None:
    if result.non_2xx or result.errors:
        # An error answer is cheaper than a proxied one: counting it would flatter the gateway.
        raise SystemExit(
            f"bench.instructions: {url} gave {result.non_2xx} non-2xx answers and "
            f"{result.errors} socket errors in {result.requests} requests"
        )


def perf_counts_instructions() -> bool:
    """Whether ``perf`` can read the hardware instruction counter here."""
    if shutil.which("perf") is None:
        return False
    done = subprocess.run(
        ["perf", "stat", "-x,", "-e", "instructions:u", "true"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.returncode == 0 and any(
        line.split(",")[0].isdigit() for line in done.stderr.splitlines()
    )


def callgrind_control(pid: int, port: int, kick_path: str, *args: str) -> None:
    """Send callgrind a command. Valgrind reads it only while the program runs, so an idle
    server is woken with small GETs until the command is taken (a handful of cheap requests
    next to the hundreds measured)."""
    command = subprocess.Popen(
        ["callgrind_control", *args, str(pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while command.poll() is None:
        if time.monotonic() > deadline:
            command.kill()
            raise SystemExit(f"bench.instructions: callgrind_control {args} did not answer")
        http_status("127.0.0.1", port, "GET", kick_path, timeout=5)
        time.sleep(0.05)
    if command.returncode != 0:
        raise SystemExit(f"bench.instructions: callgrind_control {args} failed")


def measure_callgrind(
    pid: int, port: int, kick_path: str, out_dir: Path, load: Load
) -> tuple[int, int]:
    """(instructions, requests) of the callgrind-run process ``pid`` over one wrk run."""
    before = set(out_dir.glob(f"callgrind.{pid}*"))
    callgrind_control(pid, port, kick_path, "--instr=on")
    try:
        result = load.run()
    finally:
        callgrind_control(pid, port, kick_path, "--instr=off")
        callgrind_control(pid, port, kick_path, "--dump")
    refused(result, load.url)
    dumps = sorted(set(out_dir.glob(f"callgrind.{pid}*")) - before)
    if not dumps:
        raise SystemExit(f"bench.instructions: no callgrind dump for pid {pid}")
    total = 0
    for dump in dumps:
        for line in dump.read_text(errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                total = max(total, int(line.split()[1]))
    return total, result.requests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=None, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=None, help="wrk connections")
    parser.add_argument("--counter", choices=("auto", "perf", "callgrind"), default="auto")
    parser.add_argument(
        "--only", default="", help="comma-separated loads to measure (default: all eight)"
    )
    parser.add_argument(
        "--gateway-config-extra",
        action="append",
        default=[],
        metavar="TOML",
        help="TOML appended to bench/gateway.toml (e.g. a [telemetry] section to price traces)",
    )
    args = parser.parse_args(argv)
    counter = args.counter
    if counter == "auto":
        counter = "perf" if perf_counts_instructions() else "callgrind"
    tool = "perf" if counter == "perf" else "valgrind"
    if shutil.which(tool) is None:
        package = "linux-perf" if counter == "perf" else "valgrind"
        print(
            f"bench.instructions: {tool} is not installed (apt-get install {package})",
            file=sys.stderr,
        )
        return 2
    callgrind = counter == "callgrind"
    duration = args.duration or (10.0 if callgrind else 8.0)
    connections = args.connections or (8 if callgrind else 32)
    tmp = Path(tempfile.mkdtemp(prefix="beatra-instr-"))
    logs = tmp / "logs"
    logs.mkdir()
    if callgrind:
        wrapper = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
        wrapper.append(f"--callgrind-out-file={tmp}/callgrind.%p")
        measured = ("floor", "lean-floor", "gateway", "gateway-redis")
        procs.WRAPPERS.update({name: wrapper for name in measured})
    extras = [
        arg for extra in args.gateway_config_extra for arg in ("--gateway-config-extra", extra)
    ]
    stack = Stack(bench_options(["--quick", *extras]), tmp, logs)
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
        kicks = {"floor": "/", "lean-floor": "/", "gateway": "/v1/health"}
        wanted = set(filter(None, args.only.split(",")))
        if not wanted or "gateway-redis" in wanted:
            redis_gateway = start_redis_gateway(stack, tmp)
            if redis_gateway is not None:
                pids["gateway-redis"] = redis_gateway.pid
                kicks["gateway-redis"] = "/v1/health"
        print(f"counter: {counter}, wrk c={connections} for {duration:g} s")
        print("| load | instructions per request | requests |\n|---|---:|---:|")
        for name, port, path, model, stream in TARGETS:
            server = "gateway" if name == "gateway-responses" else name.removesuffix("-sse")
            if (wanted and name not in wanted) or server not in pids:
                continue
            url = f"http://127.0.0.1:{port}{path}"
            api = "responses" if path == RESPONSES_PATH else "chat"
            run_wrk(url, connections, 2, model=model, stream=stream, api=api)  # warm-up
            load = Load(url, model, stream, duration, connections, api)
            if callgrind:
                count, requests = measure_callgrind(pids[server], port, kicks[server], tmp, load)
            else:
                count, requests = measure(pids[server], load)
            print(
                f"| {name} | {count / max(1, requests) / 1000:,.0f}k | {requests:,} |", flush=True
            )
    finally:
        stack.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
