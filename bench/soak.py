"""The soak benchmark, run by ``bench/soak`` as ``python -m bench.soak``: one gateway process with
every feature on, a long mixed load (bench/soak_load.py), and its memory sampled as it goes.

It starts nginx (bench/soak_nginx.conf), the timed SSE upstream and the gateway
(bench/soak_gateway.toml), sends ``--requests`` requests at ``--concurrency`` (stopping early at
``--max-seconds``), reads the gateway's VmRSS, open fds and threads from /proc every
``--sample-every`` answers, then writes ``bench/results/soak-latest.md`` (and the raw numbers
under ``bench/results/raw/``) and prints it. Every process it starts is stopped by its pid, also
on failure, Ctrl-C or SIGTERM. The gateway is pinned to CPU 0; everything else to CPU 1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any

import orjson
import uvloop

from bench.loads import BENCH_DIR, LOAD_CPU, ROOT
from bench.phases import scrape_statuses
from bench.procs import Proc, port_free, spawn, wait_serving
from bench.soak_load import LoadResult, Target, drive
from bench.soak_report import IDLE_WAIT_S, Sample, render, summarize
from bench.stack import SUBJECT_CPU, machine, raise_fd_limit

NGINX_PORT, TIMED_PORT, GATEWAY_PORT = 18190, 18191, 18193
RESULTS = BENCH_DIR / "results"
TARGET = Target(
    base_url=f"http://127.0.0.1:{GATEWAY_PORT}",
    api_key="bench-key",
    chat_model="soak-json",
    stream_model="soak-sse",
    failing_model="soak-fail",
    slow_stream_model="soak-slow",
    idempotency_keys=2000,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/soak",
        description="Soak one gateway process with a long mixed load; watch its memory.",
    )
    parser.add_argument("--requests", type=int, default=1_000_000, help="requests to send")
    parser.add_argument(
        "--max-seconds", type=float, default=3600.0, help="stop sending after this long"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients")
    parser.add_argument(
        "--sample-every", type=int, default=0, help="answers between samples (requests/200)"
    )
    parser.add_argument(
        "--access-log",
        default="/dev/null",
        help="where the gateway's JSON access log (its stdout) goes",
    )
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1:
        parser.error("--requests and --concurrency must be positive")
    if args.sample_every <= 0:
        args.sample_every = max(1, args.requests // 200)
    return args


def read_process(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (kB) and threads from /proc/PID/status, and the number of open fds."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            found[key] = int(value.split()[0])
    return {
        "rss_kb": found["VmRSS"],
        "hwm_kb": found["VmHWM"],
        "threads": found["Threads"],
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


class Soak:
    """The processes of one soak run and what it measured."""

    def __init__(self, args: argparse.Namespace, tmp: Path, logs: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.logs = logs
        self.procs: list[Proc] = []
        self.gateway: Proc | None = None
        self.samples: list[Sample] = []
        self.problems: list[str] = []
        self.t0 = time.perf_counter()

    def say(self, text: str) -> None:
        print(f"[{time.perf_counter() - self.t0:7.1f}s] {text}", file=sys.stderr, flush=True)

    def _log(self, name: str) -> IO[bytes]:
        return (self.logs / f"soak_{name}.log").open("wb")

    def start(self) -> None:
        prefix = self.tmp / "nginx"
        (prefix / "tmp").mkdir(parents=True)
        nginx_command = [shutil.which("nginx") or "nginx", "-c", str(BENCH_DIR / "soak_nginx.conf")]
        nginx_command += ["-p", f"{prefix}/", "-e", str(prefix / "error.log")]
        nginx = spawn(
            "nginx",
            nginx_command,
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
        wait_serving(nginx, NGINX_PORT, "/", want=None, deadline_s=10)
        wait_serving(timed, TIMED_PORT, "/", want=None, deadline_s=15)
        with open(self.args.access_log, "ab") as access_log:
            self.gateway = spawn(
                "gateway",
                [sys.executable, "-m", "gateway", "--config", str(BENCH_DIR / "soak_gateway.toml")],
                cpu=SUBJECT_CPU,
                cwd=ROOT,
                stdout=access_log,
                stderr=self._log("gateway_stderr"),
            )
        self.procs.append(self.gateway)
        wait_serving(self.gateway, GATEWAY_PORT, "/v1/health", want=200, deadline_s=30)
        self.say(f"nginx, the timed upstream and the gateway (pid {self.gateway.pid}) are serving")

    def sample(self, done: int, elapsed: float) -> None:
        assert self.gateway is not None
        now = read_process(self.gateway.pid)
        self.samples.append(
            Sample(
                done=done,
                elapsed_s=elapsed,
                rss_kb=now["rss_kb"],
                fds=now["fds"],
                threads=now["threads"],
                cpu_s=self.gateway.cpu_seconds(),
            )
        )
        if len(self.samples) % 20 == 0:
            self.say(
                f"{done:,} answers in {elapsed:,.0f} s ({done / elapsed:,.0f} req/s): "
                f"RSS {now['rss_kb'] / 1024:.1f} MB, {now['fds']} fds"
            )

    def wait_for_fds(self, idle_fds: int) -> dict[str, float]:
        """The process once its fds are back to ``idle_fds`` (or after ``IDLE_WAIT_S``), with
        ``wait_s``: how long that took."""
        assert self.gateway is not None
        started = time.perf_counter()
        while True:
            now = read_process(self.gateway.pid)
            waited = time.perf_counter() - started
            if now["fds"] <= idle_fds or waited >= IDLE_WAIT_S:
                return {**now, "wait_s": round(waited, 1)}
            time.sleep(0.5)

    def run(self) -> dict[str, Any]:
        assert self.gateway is not None
        time.sleep(1.0)
        idle = read_process(self.gateway.pid)
        cpu_before = self.gateway.cpu_seconds()
        load_before = os.getloadavg()[0]
        self.say(f"idle: {idle}; sending {self.args.requests:,} requests")
        self.sample(0, 0.0)
        result: LoadResult = uvloop.run(
            drive(
                TARGET,
                self.args.requests,
                concurrency=self.args.concurrency,
                max_seconds=self.args.max_seconds,
                sample_every=self.args.sample_every,
                on_sample=self.sample,
            )
        )
        if self.samples[-1].done != result.sent:
            self.sample(result.sent, result.seconds)
        gateway_cpu = self.gateway.cpu_seconds() - cpu_before
        if not self.gateway.alive():
            raise RuntimeError(f"the gateway died (exit {self.gateway.popen.returncode})")
        after = self.wait_for_fds(idle["fds"])
        if result.sent < self.args.requests:
            self.problems.append(
                f"stopped by --max-seconds after {result.sent:,} of {self.args.requests:,}"
            )
        statuses: dict[str, dict[str, int]] = {}
        for (kind, status), count in result.statuses.items():
            statuses.setdefault(kind, {})[str(status)] = count
        load = {
            "sent": result.sent,
            "seconds": result.seconds,
            "rps": result.rps,
            "replays": result.replays,
            "statuses": statuses,
            "problems": dict(result.problems),
            "problem_samples": result.problem_samples,
        }
        return {
            "machine": machine(),
            "planned": self.args.requests,
            "concurrency": self.args.concurrency,
            "sample_every": self.args.sample_every,
            "access_log": self.args.access_log,
            "idempotency_keys": TARGET.idempotency_keys,
            "loadavg": [load_before, os.getloadavg()[0]],
            "idle": idle,
            "after_idle": after,
            "gateway_cpu_s": gateway_cpu,
            "load": load,
            "samples": [asdict(s) for s in self.samples],
            "gateway_statuses": scrape_statuses(GATEWAY_PORT),
            "problems": self.problems,
        }

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through ``finally``: every started process is stopped


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("nginx") is None or shutil.which("taskset") is None:
        print("bench/soak: needs nginx and taskset (bench/soak installs them)", file=sys.stderr)
        return 2
    busy = [p for p in (NGINX_PORT, TIMED_PORT, GATEWAY_PORT) if not port_free(p)]
    if busy:
        print(f"bench/soak: ports already in use: {busy}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    raise_fd_limit()
    with contextlib.suppress(OSError):  # the driver shares CPU 1 with the upstreams
        os.sched_setaffinity(0, {LOAD_CPU})
    raw = RESULTS / "raw"
    logs = raw / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="beatra-soak-"))
    soak = Soak(args, tmp, logs)
    try:
        soak.start()
        data = soak.run()
    except (RuntimeError, subprocess.TimeoutExpired, OSError, KeyboardInterrupt) as exc:
        print(f"bench/soak: the run did not finish: {exc!r}", file=sys.stderr)
        return 1
    finally:
        soak.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    data["elapsed_s"] = time.perf_counter() - soak.t0
    data["summary"] = summarize(soak.samples, data["load"]["sent"])
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (raw / f"soak-{stamp}.json").write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    text = render(data)
    (RESULTS / "soak-latest.md").write_text(text, encoding="utf-8")
    print(text)
    return 1 if sum(data["load"]["problems"].values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
