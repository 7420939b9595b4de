"""The benchmark's entry point, run by ``bench/run`` as ``python -m bench.runner``: parse the
flags, check the machine, run every phase in order, and write ``bench/results/latest.md`` (and the
raw numbers under ``bench/results/raw/``).

The processes live in bench/stack.py (started, and stopped by their pid, there); the phases that
measure them live in bench/phases.py.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.loads import BENCH_DIR, ROOT
from bench.peers import LITELLM_PORT, REDIS_GATEWAY_PORT, start_litellm, start_redis_gateway
from bench.phases import Bench, scrape_statuses
from bench.procs import port_free
from bench.report import render
from bench.stack import (
    CHAT_PATH,
    FLOOR_PORT,
    GATEWAY_PORT,
    NGINX_PORT,
    TIMED_PORT,
    Options,
    machine,
    raise_fd_limit,
)

RESULTS = BENCH_DIR / "results"


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="bench/run", description="Run the gateway benchmark; write bench/results/latest.md."
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run (about 2 min)")
    parser.add_argument("--duration", type=float, help="seconds per wrk run (10; quick 2)")
    parser.add_argument("--repeats", type=int, help="wrk runs per point (3; quick 2)")
    parser.add_argument("--warmup", type=float, help="seconds of unreported warm-up (3; quick 1)")
    parser.add_argument("--concurrency", default="1,32,128", help="wrk connection counts")
    parser.add_argument("--seq-streams", type=int, help="sequential streams per target (200)")
    parser.add_argument("--streams", type=int, help="concurrent streams (1000; quick 300)")
    parser.add_argument("--startup-runs", type=int, help="gateway starts timed (3; quick 2)")
    parser.add_argument(
        "--no-idempotency-key",
        action="store_true",
        help="skip the c=32 load with a unique Idempotency-Key per request (gateway-idem)",
    )
    parser.add_argument(
        "--gateway-config-extra",
        action="append",
        type=Path,
        default=[],
        metavar="TOML",
        help="hook: TOML text appended to bench/gateway.toml (rate limits, stores, ...)",
    )
    parser.add_argument(
        "--redis",
        action="store_true",
        help="also the gateway with state.backend = redis on a local redis-server (JSON loads)",
    )
    parser.add_argument(
        "--peer",
        choices=["litellm"],
        help="also a peer gateway: litellm[proxy] in its own virtualenv (JSON and SSE loads)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="also profile the gateway with py-spy at c=32"
    )
    parser.add_argument("--profile-seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    quick = bool(args.quick)

    def pick(value: Any, full: Any, short: Any) -> Any:
        return value if value is not None else (short if quick else full)

    return Options(
        quick=quick,
        duration_s=pick(args.duration, 10.0, 2.0),
        repeats=pick(args.repeats, 3, 2),
        warmup_s=pick(args.warmup, 3.0, 1.0),
        concurrency=[int(c) for c in args.concurrency.split(",") if c],
        seq_streams=pick(args.seq_streams, 200, 20),
        concurrent_streams=pick(args.streams, 1000, 300),
        startup_runs=pick(args.startup_runs, 3, 2),
        idempotency_key=not args.no_idempotency_key,
        profile=bool(args.profile),
        profile_s=float(args.profile_seconds) if not quick else min(5.0, args.profile_seconds),
        config_extra=list(args.gateway_config_extra),
        redis=bool(args.redis),
        peer=args.peer,
    )


def run(bench: Bench) -> None:
    """Every phase of the run, in order."""
    bench.start_upstreams()
    config = bench.gateway_config()
    bench.gateway = bench.measure_startup(config)
    bench.sanity()
    json_targets: list[tuple[str, int, str, dict[str, Any]]] = [
        ("direct", NGINX_PORT, CHAT_PATH, {"model": "bench-json"}),
        ("floor", FLOOR_PORT, CHAT_PATH, {"model": "bench-json"}),
        ("gateway", GATEWAY_PORT, CHAT_PATH, {"model": "bench-json"}),
        # The same question as a Responses API request (store: false), translated to chat.
        (
            "gateway-responses",
            GATEWAY_PORT,
            "/v1/responses",
            {"model": "bench-json", "api": "responses"},
        ),
    ]
    sse = {"model": "bench-sse", "stream": True}
    sse_targets: list[tuple[str, int, str, dict[str, Any]]] = [
        ("direct-sse", NGINX_PORT, "/stream" + CHAT_PATH, sse),
        ("floor-sse", FLOOR_PORT, "/stream" + CHAT_PATH, sse),
        ("gateway-sse", GATEWAY_PORT, CHAT_PATH, sse),
    ]
    if bench.o.redis:
        redis_gateway = start_redis_gateway(bench, bench.tmp)
        if redis_gateway is not None:
            bench.extra.append(redis_gateway)
            json_targets.append(
                ("gateway-redis", REDIS_GATEWAY_PORT, CHAT_PATH, json_targets[0][3])
            )
    if bench.o.peer == "litellm":
        bench.extra.append(start_litellm(bench, bench.tmp))
        json_targets.append(("litellm", LITELLM_PORT, CHAT_PATH, {"model": "bench-json"}))
        sse_targets.append(("litellm-sse", LITELLM_PORT, CHAT_PATH, sse))
    bench.wrk_matrix("json", json_targets)
    bench.wrk_matrix("sse", sse_targets)
    if bench.o.idempotency_key:
        bench.idempotency_load()
    bench.streams()
    assert bench.gateway is not None and bench.floor is not None
    if not bench.gateway.alive():
        raise RuntimeError(f"the gateway died (exit {bench.gateway.popen.returncode})")
    bench.data["memory_after_kb"] = bench.gateway.memory_kb()
    bench.data["floor_memory_after_kb"] = bench.floor.memory_kb()
    bench.data["gateway_statuses"] = scrape_statuses(GATEWAY_PORT)
    if bench.o.profile:
        bench.profile()


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    for tool in ("nginx", "wrk", "taskset"):
        if shutil.which(tool) is None:
            print(f"bench: {tool} is not installed (bench/run installs it)", file=sys.stderr)
            return 2
    if (os.cpu_count() or 1) < 2:
        print("bench: needs two CPUs (the gateway on 0, the load on 1)", file=sys.stderr)
        return 2
    busy = [p for p in (NGINX_PORT, TIMED_PORT, FLOOR_PORT, GATEWAY_PORT) if not port_free(p)]
    if busy:
        print(f"bench: ports already in use: {busy}", file=sys.stderr)
        return 2
    raise_fd_limit()
    raw = RESULTS / "raw"
    logs = raw / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="beatra-bench-"))
    bench = Bench(options, tmp, logs)
    bench.data["machine"] = machine()
    failed: str | None = None
    try:
        run(bench)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        failed = str(exc)
        bench.problem(f"run aborted: {exc}")
    except KeyboardInterrupt:
        failed = "interrupted"
        bench.problem("run interrupted")
    finally:
        bench.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    bench.data["elapsed_s"] = time.perf_counter() - bench.t0
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (raw / f"{stamp}.json").write_bytes(
        orjson.dumps(bench.data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    )
    text = render(bench.data, ROOT)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.md").write_text(text, encoding="utf-8")
    print(text)
    if failed:
        print(f"bench: the run did not finish: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
