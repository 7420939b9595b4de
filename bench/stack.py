"""The benchmark's processes and environment: the run's options, the fixed ports and CPUs, and the
setup and teardown of nginx, the timed upstream, the floor and the gateway (its config included),
plus what the run records about the machine and the file-descriptor limit it raises.

CPU 0 belongs to the process under test (the gateway, or the floor); nginx, the timed upstream,
wrk, the stream client and the runner share CPU 1. Everything listens on 127.0.0.1, and every
process started here is stopped here, by its pid.
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.loads import BENCH_DIR, LOAD_CPU, ROOT
from bench.procs import Proc, spawn, wait_serving

NGINX_PORT, TIMED_PORT, FLOOR_PORT, GATEWAY_PORT = 18180, 18181, 18182, 18183
SUBJECT_CPU = 0
CHAT_PATH = "/v1/chat/completions"


@dataclass
class Options:
    quick: bool
    duration_s: float
    repeats: int
    warmup_s: float
    concurrency: list[int]
    seq_streams: int
    concurrent_streams: int
    startup_runs: int
    idempotency_key: bool
    profile: bool
    profile_s: float
    config_extra: list[Path] = field(default_factory=list)
    redis: bool = False  # also the gateway on Redis (bench/peers.py)
    peer: str | None = None  # also a peer gateway ("litellm")


class Stack:
    """The processes of one run and its bookkeeping (progress lines, problems, collected data)."""

    def __init__(self, options: Options, tmp: Path, logs: Path) -> None:
        self.o = options
        self.tmp = tmp
        self.logs = logs
        self.procs: list[Proc] = []
        self.t0 = time.perf_counter()
        self.data: dict[str, Any] = {"options": _jsonable(asdict(options)), "problems": []}
        self.gateway: Proc | None = None
        self.floor: Proc | None = None
        self.extra: list[Proc] = []  # the optional subjects (bench/peers.py), CPU-watched too
        self.config: dict[str, Any] = {}

    # -- bookkeeping ---------------------------------------------------------------------------

    def say(self, text: str) -> None:
        print(f"[{time.perf_counter() - self.t0:6.1f}s] {text}", file=sys.stderr, flush=True)

    def problem(self, text: str) -> None:
        self.say("PROBLEM: " + text)
        self.data["problems"].append(text)

    def _log(self, name: str) -> Any:
        return (self.logs / f"{name}.log").open("wb")

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()

    # -- processes -----------------------------------------------------------------------------

    def start_upstreams(self) -> None:
        prefix = self.tmp / "nginx"
        (prefix / "tmp").mkdir(parents=True)
        nginx = spawn(
            "nginx",
            [
                shutil.which("nginx") or "nginx",
                "-c",
                str(BENCH_DIR / "nginx.conf"),
                "-p",
                f"{prefix}/",
                "-e",
                str(prefix / "error.log"),
            ],
            cpu=LOAD_CPU,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=self._log("nginx"),
        )
        self.procs.append(nginx)
        timed = spawn(
            "timed-upstream",
            [sys.executable, "-m", "bench.timed_upstream", "--port", str(TIMED_PORT)],
            cpu=LOAD_CPU,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=self._log("timed_upstream"),
        )
        self.procs.append(timed)
        floor = spawn(
            "floor",
            [
                sys.executable,
                "-m",
                "bench.floor",
                "--port",
                str(FLOOR_PORT),
                "--upstream",
                f"http://127.0.0.1:{NGINX_PORT}",
                "--timed-upstream",
                f"http://127.0.0.1:{TIMED_PORT}",
            ],
            cpu=SUBJECT_CPU,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=self._log("floor"),
        )
        self.procs.append(floor)
        self.floor = floor
        wait_serving(nginx, NGINX_PORT, "/", want=None, deadline_s=10)
        wait_serving(timed, TIMED_PORT, "/", want=None, deadline_s=15)
        wait_serving(floor, FLOOR_PORT, "/", want=None, deadline_s=15)
        self.say("nginx, the timed upstream and the floor are serving")

    def gateway_config(self) -> Path:
        text = (BENCH_DIR / "gateway.toml").read_text(encoding="utf-8")
        for extra in self.o.config_extra:
            text += f"\n# --- appended from {extra.name} (--gateway-config-extra)\n"
            text += extra.read_text(encoding="utf-8")
        path = self.tmp / "gateway.toml"
        path.write_text(text, encoding="utf-8")
        self.config = tomllib.loads(text)
        return path

    def start_gateway(self, config: Path, run: int) -> tuple[Proc, float]:
        # Logging stays on (JSON lines on stdout); only its destination is /dev/null.
        proc = spawn(
            "gateway",
            [
                sys.executable,
                "-m",
                "gateway",
                "--config",
                str(config),
                "--port",
                str(GATEWAY_PORT),
            ],
            cpu=SUBJECT_CPU,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=self._log(f"gateway_stderr_{run}"),
        )
        self.procs.append(proc)
        return proc, wait_serving(
            proc, GATEWAY_PORT, "/v1/health", want=200, deadline_s=30, poll_s=0.002
        )


def machine() -> dict[str, Any]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break

    def version(command: list[str]) -> str:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
        except OSError:
            return "missing"
        lines = (done.stdout + done.stderr).strip().splitlines()
        return lines[0] if lines else "unknown"

    commit = version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = version(["git", "-C", str(ROOT), "status", "--porcelain", "--", "gateway", "providers"])
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_model": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": version(["nginx", "-v"]),
        "wrk": version(["wrk", "-v"]),
        "commit": commit + ("" if dirty in ("", "unknown") else " (gateway/providers modified)"),
    }


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return str(value) if isinstance(value, Path) else value
