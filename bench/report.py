"""The benchmark's report: the runner's collected numbers rendered as ``bench/results/latest.md``,
with each of the performance issue's targets next to its measured value and a pass/fail column.
Tolerates a partial run: whatever was not measured shows as n/a."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.profile_summary import load as load_profile
from bench.profile_summary import render as render_profile
from bench.report_peers import side_by_side, subject
from bench.stats import median, spread

Number = float | None


def _num(value: Any) -> Number:
    if isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value)):
        return float(value)
    return None


def fmt(value: Number, digits: int = 2, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def _minus(a: Number, b: Number) -> Number:
    return None if a is None or b is None else a - b


def _mb(kb: Any) -> Number:
    """/proc's kB (KiB) as MB (10^6 bytes), the unit of the targets."""
    value = _num(kb)
    return None if value is None else value * 1024 / 1e6


class Runs:
    """The wrk runs of one target at one concurrency."""

    def __init__(self, runs: list[dict[str, Any]] | None) -> None:
        self.runs = runs or []

    def values(self, key: str) -> list[float]:
        if key == "rps":
            return [r["requests"] / r["seconds"] for r in self.runs if r["seconds"]]
        return [float(r[key]) for r in self.runs]

    def med(self, key: str) -> Number:
        values = self.values(key)
        return median(values) if values else None

    def spread(self, key: str) -> Number:
        values = self.values(key)
        return spread(values) if values else None

    def cpu_us_per_request(self, proc: str) -> Number:
        requests = sum(r["requests"] for r in self.runs)
        cpu = sum(r["cpu_seconds"].get(proc, 0.0) for r in self.runs)
        return cpu * 1e6 / requests if requests else None

    def failures(self) -> int:
        return sum(r["errors"] + r["non_2xx"] for r in self.runs)


def _check(
    name: str,
    measured: Number,
    target: str,
    ok: Callable[[float], bool],
    unit: str,
    *,
    digits: int = 2,
) -> str:
    verdict = "n/a" if measured is None else ("PASS" if ok(measured) else "**FAIL**")
    return f"| {name} | {fmt(measured, digits, unit)} | {target} | {verdict} |"


def render(data: dict[str, Any], root: Path) -> str:
    wrk: dict[str, list[dict[str, Any]]] = data.get("wrk", {})

    def runs(target: str, c: int) -> Runs:
        return Runs(wrk.get(f"{target}@{c}"))

    m = data.get("machine", {})
    o = data.get("options", {})
    out = ["# beatra-gateway benchmark", ""]
    out += [
        f"- date: {m.get('date', 'n/a')}; commit {m.get('commit', 'n/a')}",
        f"- CPU: {m.get('cpu_model', 'n/a')}, {m.get('cores', 'n/a')} cores; kernel "
        f"{m.get('kernel', 'n/a')}; Python {m.get('python', 'n/a')}; {m.get('nginx', '')}; "
        f"{m.get('wrk', '')}",
        f"- mode: {'quick' if o.get('quick') else 'full'}; wrk {o.get('repeats')} x "
        f"{o.get('duration_s')} s per point after {o.get('warmup_s')} s warm-up (median, spread "
        "= (max-min)/median); gateway and floor pinned to CPU 0, nginx, timed upstream, wrk and "
        "clients on CPU 1; gateway with auth, request ids, metrics and JSON access log "
        "(to /dev/null)",
        f"- run took {fmt(_num(data.get('elapsed_s')), 0, ' s')}",
    ]
    # Only runs with the gateway or the floor on CPU 0: during direct runs CPU 0 is idle for us.
    subject_runs = [r for key, rs in wrk.items() if not key.startswith("direct") for r in rs]
    other = [float(r.get("cpu0_other_pct", 0.0)) for r in subject_runs]
    steal = [float(r.get("cpu0_steal_pct", 0.0)) for r in subject_runs]
    if other:
        noisy = max(other) > 5 or max(steal) > 5
        out.append(
            f"- interference on CPU 0 during the floor and gateway wrk runs: other processes up to "
            f"{max(other):.0f} % (median {median(other):.0f} %), hypervisor steal up to "
            f"{max(steal):.0f} %"
            + (": **the machine was not quiet; latency and req/s are noisy**" if noisy else "")
        )
    out.append("")

    # -- targets -------------------------------------------------------------------------------
    seq = data.get("sequential", {})
    conc = data.get("concurrent", {})
    seq_d, seq_g = seq.get("direct", {}), seq.get("gateway", {})

    def seq_value(block: dict[str, Any], metric: str, pct: str) -> Number:
        return _num(block.get(metric, {}).get(pct))

    gw_rounds = conc.get("gateway", [])
    drops = sum(r.get("dropped", 0) for r in gw_rounds) if gw_rounds else None
    gap_p99 = (
        max((_num(r["added_gap_ms"].get("p99")) or math.inf) for r in gw_rounds)
        if gw_rounds
        else None
    )
    startup = data.get("startup_s") or []
    idle = data.get("idle_memory_kb", {})
    after = data.get("memory_after_kb", {})
    gw32, fl32 = runs("gateway", 32).med("rps"), runs("floor", 32).med("rps")
    gw_cpu32 = runs("gateway", 32).cpu_us_per_request("gateway")
    fl_cpu32 = runs("floor", 32).cpu_us_per_request("floor")
    out += [
        "## Targets",
        "",
        "| check | measured | target | result |",
        "| --- | ---: | --- | --- |",
    ]
    out += [
        _check(
            "added latency c=1, p50 (gateway - direct)",
            _minus(runs("gateway", 1).med("p50_ms"), runs("direct", 1).med("p50_ms")),
            "<= 1 ms",
            lambda v: v <= 1.0,
            " ms",
        ),
        _check(
            "added latency c=1, p99 (gateway - direct)",
            _minus(runs("gateway", 1).med("p99_ms"), runs("direct", 1).med("p99_ms")),
            "<= 3 ms",
            lambda v: v <= 3.0,
            " ms",
        ),
        _check("throughput c=32", gw32, ">= 2,000 req/s", lambda v: v >= 2000, " req/s"),
        _check("p99 c=32", runs("gateway", 32).med("p99_ms"), "<= 30 ms", lambda v: v <= 30, " ms"),
        _check(
            "throughput c=32 vs floor",
            None if gw32 is None or not fl32 else 100.0 * gw32 / fl32,
            ">= 60 %",
            lambda v: v >= 60,
            " %",
        ),
        _check(
            "same, from CPU us/req (immune to other load)",
            None if not gw_cpu32 or not fl_cpu32 else 100.0 * fl_cpu32 / gw_cpu32,
            ">= 60 %",
            lambda v: v >= 60,
            " %",
        ),
        _check(
            "streaming added TTFT p50",
            _minus(seq_value(seq_g, "ttft_ms", "p50"), seq_value(seq_d, "ttft_ms", "p50")),
            "<= 1 ms",
            lambda v: v <= 1.0,
            " ms",
        ),
        _check(
            f"{o.get('concurrent_streams', 'n/a')} concurrent streams: dropped (all rounds)",
            None if drops is None else float(drops),
            "0",
            lambda v: v == 0,
            "",
            digits=0,
        ),
        _check(
            "concurrent streams: added inter-chunk p99 (worst round)",
            None if gap_p99 is None or math.isinf(gap_p99) else gap_p99,
            "<= 5 ms",
            lambda v: v <= 5.0,
            " ms",
        ),
        _check(
            "idle RSS after start", _mb(idle.get("VmRSS")), "<= 80 MB", lambda v: v <= 80, " MB"
        ),
        _check(
            "peak RSS (VmHWM) after all loads",
            _mb(after.get("VmHWM")),
            "<= 150 MB",
            lambda v: v <= 150,
            " MB",
        ),
        _check(
            "start to /v1/health 200 (median)",
            median(startup) if startup else None,
            "<= 1.5 s",
            lambda v: v <= 1.5,
            " s",
        ),
        "",
    ]

    # -- request load --------------------------------------------------------------------------
    out += [
        "## Request load (wrk, POST /v1/chat/completions)",
        "",
        "JSON rows: a non-streaming chat request answered by a canned `chat.completion`. SSE rows "
        "(c=32 only): `stream: true`, answered by a canned 9-event stream (latency = whole "
        "stream). CPU = process CPU time (utime+stime) over the runs / requests served; it does "
        "not depend on what else runs on the machine, unlike req/s and latency; req/s per core = "
        "1e6 / CPU us per request, what one dedicated core could serve. CPU 0 other = "
        "CPU 0 time used by anything but the process under test (other jobs on this machine).",
        "",
        "| load | target | c | req/s | spread | p50 ms | p90 ms | p99 ms | failed | CPU us/req "
        "| req/s per core | CPU 0 other |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, items in wrk.items():
        target, _, c_text = key.partition("@")
        r = Runs(items)
        proc = subject(target)
        cpu = r.cpu_us_per_request(proc) if not target.startswith("direct") else None
        load = "SSE" if target.endswith("-sse") else "JSON"
        if target.endswith("-idem"):
            load = "JSON + Idempotency-Key"
        sp = r.spread("rps")
        out.append(
            f"| {load} | {target} | {c_text} | {fmt(r.med('rps'), 0)} | "
            f"{'n/a' if sp is None else f'{100 * sp:.1f} %'} | {fmt(r.med('p50_ms'))} | "
            f"{fmt(r.med('p90_ms'))} | {fmt(r.med('p99_ms'))} | {r.failures()} | {fmt(cpu, 0)} "
            f"| {fmt(1e6 / cpu if cpu else None, 0)} | {fmt(r.med('cpu0_other_pct'), 0, ' %')} |"
        )
    out += ["", "Added latency (median p50 / p99 of the target minus direct nginx):", ""]
    out += [
        "| c | floor p50 | floor p99 | gateway p50 | gateway p99 |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in o.get("concurrency", []):
        d = runs("direct", c)
        cells = [
            fmt(_minus(runs(t, c).med(p), d.med(p)), 2, " ms")
            for t in ("floor", "gateway")
            for p in ("p50_ms", "p99_ms")
        ]
        out.append(f"| {c} | " + " | ".join(cells) + " |")
    out.append("")
    out += side_by_side(runs, wrk)

    # -- streams -------------------------------------------------------------------------------
    shapes = data.get("stream_shapes", {})
    s_shape, c_shape = shapes.get("sequential", {}), shapes.get("concurrent", {})
    out += [
        "## Streams (timed upstream: aiohttp.web on CPU 1)",
        "",
        f"Sequential: {o.get('seq_streams')} streams per target, one at a time, direct, floor and "
        f"gateway in turn; {s_shape.get('chunks')} chunks {s_shape.get('gap_ms')} ms apart. "
        "TTFT = request sent to first `data:` event; total = to `data: [DONE]` (aiohttp client).",
        "",
        "| target | completed | TTFT p50 | TTFT p99 | total p50 | total p99 |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for target in ("direct", "floor", "gateway"):
        b = seq.get(target, {})
        out.append(
            f"| {target} | {b.get('completed', 'n/a')}/{b.get('streams', 'n/a')} | "
            f"{fmt(seq_value(b, 'ttft_ms', 'p50'))} ms | {fmt(seq_value(b, 'ttft_ms', 'p99'))} ms"
            f" | {fmt(seq_value(b, 'total_ms', 'p50'))} ms | "
            f"{fmt(seq_value(b, 'total_ms', 'p99'))} ms |"
        )
    for target in ("floor", "gateway"):
        b = seq.get(target, {})
        added = [
            fmt(_minus(seq_value(b, metric, pct), seq_value(seq_d, metric, pct)), 2, " ms")
            for metric in ("ttft_ms", "total_ms")
            for pct in ("p50", "p99")
        ]
        out.append(f"| **added by the {target}** | | {' | '.join(added)} |")
    out += [
        "",
        f"Concurrent: {o.get('concurrent_streams')} streams at once (starts spread over one "
        f"gap), {c_shape.get('chunks')} chunks {c_shape.get('gap_ms')} ms apart each (20 "
        "chunks/s per stream); two rounds per target, the first with a cold connection pool. "
        "Added gap = client-observed gap between consecutive content events minus the upstream's "
        "fixed gap (a negative p50 means events arrived together); a stream's schedule takes "
        "(chunks - 1) x gap after its first chunk, so total - TTFT beyond that is delay too. "
        "The direct rows show what the "
        "load generator and upstream themselves add, sharing CPU 1 (lean raw-socket client); CPU = "
        "the floor's or gateway's CPU time during the round.",
        "",
        "| target | round | completed | dropped | TTFT p50 | TTFT p99 | total p50 | total p99 | "
        "added gap p50 | p90 | p99 | max | wall | CPU |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: |",
    ]
    for target in ("direct", "floor", "gateway"):
        for r in conc.get(target, []):
            g, t, total = r.get("added_gap_ms", {}), r.get("ttft_ms", {}), r.get("total_ms", {})
            cpu_text = fmt(_num(r.get("cpu_s")), 2, " s") if target != "direct" else ""
            reasons = r.get("drop_reasons") or {}
            dropped = f"{r.get('dropped')}" + (f" {reasons}" if reasons else "")
            out.append(
                f"| {target} | {r.get('round')} | {r.get('completed')} | {dropped} | "
                f"{fmt(_num(t.get('p50')), 1)} ms | {fmt(_num(t.get('p99')), 1)} ms | "
                f"{fmt(_num(total.get('p50')), 0)} ms | {fmt(_num(total.get('p99')), 0)} ms | "
                f"{fmt(_num(g.get('p50')))} ms | {fmt(_num(g.get('p90')))} ms | "
                f"{fmt(_num(g.get('p99')))} ms | {fmt(_num(g.get('max')))} ms | "
                f"{fmt(_num(r.get('wall_s')), 1)} s | {cpu_text} |"
            )
    out.append("")

    # -- memory, startup, statuses -------------------------------------------------------------
    floor_after = data.get("floor_memory_after_kb", {})
    out += [
        "## Memory and start-up",
        "",
        "| what | value |",
        "| --- | ---: |",
        f"| gateway start to /v1/health 200, each run | "
        f"{', '.join(fmt(s * 1000, 0, ' ms') for s in startup) or 'n/a'} |",
        f"| gateway idle RSS 1 s after start | {fmt(_mb(idle.get('VmRSS')), 1, ' MB')} |",
        f"| gateway RSS after all loads | {fmt(_mb(after.get('VmRSS')), 1, ' MB')} |",
        f"| gateway peak RSS (VmHWM) | {fmt(_mb(after.get('VmHWM')), 1, ' MB')} |",
        f"| floor peak RSS (VmHWM), for scale | {fmt(_mb(floor_after.get('VmHWM')), 1, ' MB')} |",
        "",
    ]
    idem = data.get("idempotency_memory")
    if idem:
        grown = (_num(idem["after_kb"].get("VmRSS")) or 0.0) - (
            _num(idem["before_kb"].get("VmRSS")) or 0.0
        )
        keys = int(idem.get("keys") or 0)
        per_key = grown * 1024 / keys if keys else None
        out.insert(
            len(out) - 1,
            f"| RSS growth over the Idempotency-Key load ({keys:,} new keys kept) | "
            f"{fmt(grown * 1024 / 1e6, 1, ' MB')} ({fmt(per_key, 0, ' bytes')} per key; "
            f"x 100,000 default max_entries = "
            f"{fmt(None if per_key is None else per_key * 1e5 / 1e6, 0, ' MB')}) |",
        )
    statuses = data.get("gateway_statuses", {})
    if statuses:
        out += [
            "Requests the gateway counted (`beatra_http_requests_total`, route and status):",
            "",
        ]
        out += [f"- `{key}`: {int(value)}" for key, value in sorted(statuses.items())]
        out += [
            "",
            "(499 = the client closed the connection before its answer: wrk does so with the "
            "requests still in flight when each timed run ends, up to c per run.)",
            "",
        ]
    problems = data.get("problems", [])
    out += ["## Problems seen", ""]
    out += [f"- {p}" for p in problems] if problems else ["- none"]
    out.append("")
    profile = data.get("profile_file")
    if profile and (root / profile).exists():
        out += ["## Profile of the gateway at c=32 (py-spy)", ""]
        out.append(render_profile(load_profile(root / profile)))
    return "\n".join(out).rstrip() + "\n"


def main() -> None:
    """Render a raw result file again: ``python -m bench.report bench/results/raw/STAMP.json``."""
    import sys

    import orjson

    root = Path(__file__).resolve().parent.parent
    print(render(orjson.loads(Path(sys.argv[1]).read_bytes()), root), end="")


if __name__ == "__main__":
    main()
