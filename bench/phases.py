"""The benchmark's measurement phases, run in order by bench/runner.py once the stack is up: the
gateway's start-up time and idle memory, sanity checks of every path, the wrk request loads, the
Idempotency-Key load, the sequential and concurrent streams, and the optional py-spy profile.

Every load is bounded in time; every number lands in ``Bench.data`` for the report.
"""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from bench.loads import LOAD_CPU, ROOT, WrkResult, run_stream_client, run_wrk
from bench.procs import Proc, cpu_times
from bench.stack import CHAT_PATH, FLOOR_PORT, GATEWAY_PORT, NGINX_PORT, SUBJECT_CPU, Stack

_TIMED_PATH = re.compile(r"/timed/(\d+)/(\d+)/")


class Bench(Stack):
    """The stack of one run, plus the phases that measure it."""

    # -- start-up ------------------------------------------------------------------------------

    def measure_startup(self, config: Path) -> Proc:
        times: list[float] = []
        idle: dict[str, int] = {}
        proc: Proc | None = None
        for run in range(self.o.startup_runs):
            proc, seconds = self.start_gateway(config, run)
            times.append(seconds)
            time.sleep(1.0)
            idle = proc.memory_kb()
            self.say(f"gateway start {run + 1}: {seconds * 1000:.0f} ms, idle RSS {idle}")
            if run < self.o.startup_runs - 1:
                proc.stop()
                self.procs.remove(proc)
        assert proc is not None
        self.data["startup_s"] = times
        self.data["idle_memory_kb"] = idle
        return proc

    # -- checks --------------------------------------------------------------------------------

    def sanity(self) -> None:
        checks = [
            ("direct json", NGINX_PORT, CHAT_PATH, "bench-json", False, b'"chat.completion"'),
            ("direct sse", NGINX_PORT, "/stream" + CHAT_PATH, "bench-sse", True, b"[DONE]"),
            ("floor json", FLOOR_PORT, CHAT_PATH, "bench-json", False, b'"chat.completion"'),
            ("floor timed", FLOOR_PORT, "/timed/3/1" + CHAT_PATH, "x", True, b"[DONE]"),
            ("gateway json", GATEWAY_PORT, CHAT_PATH, "bench-json", False, b'"bench-json"'),
            ("gateway sse", GATEWAY_PORT, CHAT_PATH, "bench-sse", True, b"[DONE]"),
            ("gateway timed", GATEWAY_PORT, CHAT_PATH, "bench-seq", True, b"[DONE]"),
        ]
        for name, port, path, model, stream, expect in checks:
            status, headers, body = post_chat(port, path, model, stream)
            if status != 200 or expect not in body:
                raise RuntimeError(f"sanity check {name}: HTTP {status}: {body[:300]!r}")
            if name == "gateway json":
                self.data["gateway_headers"] = sorted(headers)
                for wanted in ("x-request-id", "x-ratelimit-limit-requests"):
                    if wanted not in headers:
                        self.problem(f"the gateway's answer has no {wanted} header")
        self.say("sanity checks passed")

    # -- loads ---------------------------------------------------------------------------------

    def _wrk(
        self, target: str, port: int, path: str, c: int, seconds: float, **kw: Any
    ) -> WrkResult:
        watched = [p for p in (self.gateway, self.floor, *self.extra) if p is not None]
        before = {p.name: p.cpu_seconds() for p in watched}
        cpu0_before = cpu_times(SUBJECT_CPU)
        result = run_wrk(f"http://127.0.0.1:{port}{path}", c, seconds, **kw)
        cpu0 = {k: v - cpu0_before[k] for k, v in cpu_times(SUBJECT_CPU).items()}
        result.cpu_seconds = {p.name: p.cpu_seconds() - before[p.name] for p in watched}
        subject = sum(result.cpu_seconds.values())
        result.cpu0_other_pct = 100 * max(0.0, cpu0["busy"] - subject) / result.seconds
        result.cpu0_steal_pct = 100 * cpu0["steal"] / result.seconds
        if result.errors or result.non_2xx:
            self.problem(
                f"{target} c={c}: {result.errors} socket errors, {result.non_2xx} non-2xx "
                f"of {result.requests} requests"
            )
        return result

    def wrk_matrix(self, name: str, targets: list[tuple[str, int, str, dict[str, Any]]]) -> None:
        """Warm every target, then ``repeats`` rounds over all targets (interleaved, so drift
        over the run hits each target alike)."""
        table: dict[str, list[dict[str, Any]]] = self.data.setdefault("wrk", {})
        concurrencies = self.o.concurrency if name == "json" else [32]  # sse, idem: c=32
        for c in concurrencies:
            for target, port, path, kw in targets:
                warm = self._wrk(target, port, path, c, self.o.warmup_s, **kw)
                self.data.setdefault("warmup_requests", {})[f"{target}@{c}"] = warm.requests
            for repeat in range(self.o.repeats):
                for target, port, path, kw in targets:
                    result = self._wrk(target, port, path, c, self.o.duration_s, **kw)
                    table.setdefault(f"{target}@{c}", []).append(asdict(result))
                    self.say(
                        f"wrk {target:<14} c={c:<4} run {repeat + 1}/{self.o.repeats}: "
                        f"{result.rps:8.0f} req/s  p50 {result.p50_ms:7.2f}  "
                        f"p99 {result.p99_ms:7.2f} ms"
                    )

    def idempotency_load(self) -> None:
        """c=32 with a new Idempotency-Key on every request: each one claims a key and keeps its
        answer, so this also shows what the store costs in memory per entry."""
        assert self.gateway is not None
        before = self.gateway.memory_kb()
        kw: dict[str, Any] = {"model": "bench-json", "idempotency_key": True}
        self.wrk_matrix("idem", [("gateway-idem", GATEWAY_PORT, CHAT_PATH, kw)])
        after = self.gateway.memory_kb()
        runs = self.data["wrk"].get("gateway-idem@32", [])
        keys = sum(r["requests"] for r in runs) + self.data["warmup_requests"]["gateway-idem@32"]
        self.data["idempotency_memory"] = {"before_kb": before, "after_kb": after, "keys": keys}
        self.say(f"Idempotency-Key load: RSS {before} -> {after} over {keys} keys")

    def streams(self) -> None:
        providers = self.config["providers"]
        seq_url = providers["timed_seq"]["base_url"] + "/chat/completions"
        conc_url = providers["timed"]["base_url"] + "/chat/completions"
        gateway_url = f"http://127.0.0.1:{GATEWAY_PORT}{CHAT_PATH}"
        floor_seq_url = f"http://127.0.0.1:{FLOOR_PORT}{urlsplit(seq_url).path}"
        floor_conc_url = f"http://127.0.0.1:{FLOOR_PORT}{urlsplit(conc_url).path}"
        seq_chunks, seq_gap = timed_shape(seq_url)
        conc_chunks, conc_gap = timed_shape(conc_url)
        self.data["stream_shapes"] = {
            "sequential": {"chunks": seq_chunks, "gap_ms": seq_gap},
            "concurrent": {"chunks": conc_chunks, "gap_ms": conc_gap},
        }
        self.say(f"{self.o.seq_streams} sequential streams per target ({seq_chunks}x{seq_gap} ms)")
        deadline = 120 + self.o.seq_streams * 3 * (seq_chunks * seq_gap / 1000 + 1)
        self.data["sequential"] = run_stream_client(
            [
                "sequential",
                "--target",
                f"direct={seq_url}",
                "--target",
                f"floor={floor_seq_url}",
                "--target",
                f"gateway={gateway_url}",
                "--model",
                "bench-seq",
                "--chunks",
                str(seq_chunks),
                "--gap-ms",
                str(seq_gap),
                "--streams",
                str(self.o.seq_streams),
            ],
            deadline,
        )
        for target, numbers in self.data["sequential"].items():
            if numbers["dropped"]:
                self.problem(f"sequential streams via {target}: dropped {numbers['dropped']}")
        rounds: dict[str, list[Any]] = {"direct": [], "floor": [], "gateway": []}
        targets = (("direct", conc_url), ("floor", floor_conc_url), ("gateway", gateway_url))
        for target, url in targets:
            for round_number in (1, 2):
                subject = {"gateway": self.gateway, "floor": self.floor}.get(target)
                before = subject.cpu_seconds() if subject else 0.0
                report = run_stream_client(
                    [
                        "concurrent",
                        "--target",
                        f"{target}={url}",
                        "--model",
                        "bench-timed",
                        "--chunks",
                        str(conc_chunks),
                        "--gap-ms",
                        str(conc_gap),
                        "--streams",
                        str(self.o.concurrent_streams),
                        "--ramp-ms",
                        str(conc_gap),
                        "--timeout",
                        "60",
                    ],
                    180,
                )
                report["round"] = round_number
                report["cpu_s"] = subject.cpu_seconds() - before if subject else None
                rounds[target].append(report)
                gaps = report["added_gap_ms"]
                self.say(
                    f"{self.o.concurrent_streams} streams {target} round {round_number}: "
                    f"{report['completed']} completed, {report['dropped']} dropped "
                    f"{report['drop_reasons']}, added gap p99 {gaps['p99']} ms, "
                    f"wall {report['wall_s']:.1f} s"
                )
                if report["dropped"]:
                    self.problem(
                        f"concurrent streams via {target} round {round_number}: "
                        f"{report['dropped']} dropped {report['drop_reasons']}"
                    )
                time.sleep(1.0)
        self.data["concurrent"] = rounds

    def profile(self) -> None:
        assert self.gateway is not None
        # The virtualenv's own (a dev tool in the lock) when PATH has none.
        beside = Path(sys.executable).with_name("py-spy")
        py_spy = shutil.which("py-spy") or (str(beside) if beside.exists() else None)
        if py_spy is None:
            self.problem("--profile: py-spy is not installed (bash scripts/setup --test)")
            return
        out = self.logs.parent / "profile_c32.txt"
        seconds = self.o.profile_s
        self.say(f"profiling the gateway with py-spy for {seconds:.0f} s under c=32")
        spy = subprocess.Popen(
            [
                "taskset",
                "-c",
                str(LOAD_CPU),
                py_spy,
                "record",
                "--pid",
                str(self.gateway.pid),
                "--duration",
                str(round(seconds)),
                "--rate",
                "200",
                "--format",
                "raw",
                "--output",
                str(out),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log("py-spy"),
        )
        try:
            self._wrk("gateway", GATEWAY_PORT, CHAT_PATH, 32, seconds + 2, model="bench-json")
            spy.wait(timeout=seconds + 60)
        finally:
            if spy.poll() is None:
                spy.kill()
                spy.wait(timeout=10)
        if out.exists():
            self.data["profile_file"] = str(out.relative_to(ROOT))
        else:
            self.problem("py-spy wrote no profile (see results/raw/logs/py-spy.log)")


def timed_shape(url: str) -> tuple[int, int]:
    """Chunks and gap (ms) of a timed-upstream URL, ``.../timed/{chunks}/{gap_ms}/v1/...``."""
    match = _TIMED_PATH.search(url)
    if match is None:
        raise RuntimeError(f"not a timed upstream URL: {url}")
    return int(match[1]), int(match[2])


def post_chat(port: int, path: str, model: str, stream: bool) -> tuple[int, set[str], bytes]:
    body = orjson.dumps(
        {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    )
    headers = {"authorization": "Bearer sk-bench-key", "content-type": "application/json"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        names = {name.lower() for name, _ in response.getheaders()}
        return response.status, names, response.read()
    finally:
        connection.close()


def scrape_statuses(port: int) -> dict[str, float]:
    """``beatra_http_requests_total`` by route and status, from the gateway's /metrics."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("beatra_http_requests_total{"):
            labels, _, value = line.rpartition(" ")
            route = re.search(r'route="([^"]*)"', labels)
            status = re.search(r'status="([^"]*)"', labels)
            key = f"{route[1] if route else '?'} {status[1] if status else '?'}"
            found[key] = found.get(key, 0.0) + float(value)
    return found
