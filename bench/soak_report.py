"""The soak's numbers and its markdown report: the memory samples taken during the run, the
plateau and the growth after it, a sparkline of the series, and the rendering of the whole
report. Pure functions over plain data; bench/soak.py collects the data and writes the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.soak_load import MIX
from bench.stats import median

SPARK = "▁▂▃▄▅▆▇█"
# After the load, the longest wait for the open fds to come back to their idle count: the
# gateway's idle upstream connections close after aiohttp's 15 s keep-alive, checked every 15 s,
# so up to about 30 s; what is still open after this long was not closed.
IDLE_WAIT_S = 40.0
TABLE_ROWS = 24


@dataclass(frozen=True, slots=True)
class Sample:
    """The gateway process after ``done`` answers."""

    done: int
    elapsed_s: float
    rss_kb: int
    fds: int
    threads: int
    cpu_s: float


def rss_mb(kb: float) -> float:
    return kb / 1024


def plateau_kb(samples: Sequence[Sample], total: int) -> float:
    """The median RSS over the second quarter of the run: past the warm-up (caches filled, the
    allocator's arenas grown, the idempotency pool stored), before any slow leak adds up."""
    window = [s.rss_kb for s in samples if total / 4 <= s.done <= total / 2]
    if not window:  # too few samples: fall back to the middle one
        window = [samples[len(samples) // 2].rss_kb]
    return median(window)


def slope_mb_per_100k(samples: Sequence[Sample], total: int) -> float:
    """Least-squares slope of RSS over answers in the second half of the run, MB per 100k
    requests: a leak shows as a steady positive slope even when single samples are noisy."""
    half = [s for s in samples if s.done >= total / 2]
    if len(half) < 2:
        return 0.0
    xs = [s.done / 100_000 for s in half]
    ys = [rss_mb(s.rss_kb) for s in half]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread


def sparkline(values: Sequence[float], width: int = 60) -> str:
    """The series squeezed to ``width`` buckets (each the max of its values), as block glyphs
    scaled between the series' min and max."""
    if not values:
        return ""
    step = max(1, -(-len(values) // width))
    buckets = [max(values[i : i + step]) for i in range(0, len(values), step)]
    low, high = min(buckets), max(buckets)
    if high == low:
        return SPARK[0] * len(buckets)
    return "".join(SPARK[round((v - low) / (high - low) * (len(SPARK) - 1))] for v in buckets)


def thinned(samples: Sequence[Sample], rows: int = TABLE_ROWS) -> list[Sample]:
    """At most ``rows`` samples, evenly spread, always with the first and the last."""
    if len(samples) <= rows:
        return list(samples)
    picked = [samples[round(i * (len(samples) - 1) / (rows - 1))] for i in range(rows)]
    return list(dict.fromkeys(picked))


def summarize(samples: Sequence[Sample], total: int) -> dict[str, float]:
    plateau = plateau_kb(samples, total)
    end = samples[-1].rss_kb
    return {
        "plateau_mb": rss_mb(plateau),
        "end_mb": rss_mb(end),
        "growth_after_plateau_mb": rss_mb(end - plateau),
        "slope_mb_per_100k": slope_mb_per_100k(samples, total),
        "max_mb": rss_mb(max(s.rss_kb for s in samples)),
    }


def _series_table(samples: Sequence[Sample]) -> list[str]:
    lines = [
        "| requests | elapsed s | req/s since previous row | RSS MB | fds | threads |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    previous: Sample | None = None
    for s in thinned(samples):
        rate = ""
        if previous is not None and s.elapsed_s > previous.elapsed_s:
            rate = f"{(s.done - previous.done) / (s.elapsed_s - previous.elapsed_s):,.0f}"
        lines.append(
            f"| {s.done:,} | {s.elapsed_s:,.1f} | {rate} | {rss_mb(s.rss_kb):.1f} | {s.fds} "
            f"| {s.threads} |"
        )
        previous = s
    return lines


def _mix_table(statuses: dict[str, dict[str, int]], problems: dict[str, int]) -> list[str]:
    lines = [
        "| kind | expected | answers by status | wrong |",
        "| --- | ---: | --- | ---: |",
    ]
    for kind, (_, status, code) in MIX.items():
        seen = statuses.get(kind, {})
        shown = ", ".join(f"{k}: {v:,}" for k, v in sorted(seen.items())) or "-"
        expected = f"{status}" + (f" `{code}`" if code else "")
        lines.append(f"| {kind} | {expected} | {shown} | {problems.get(kind, 0):,} |")
    return lines


def render(data: dict[str, Any]) -> str:
    """The markdown report of one soak run (``data`` as bench/soak.py collects it)."""
    samples = [Sample(**s) for s in data["samples"]]
    load = data["load"]
    total = load["sent"]
    numbers = summarize(samples, total)
    m = data["machine"]
    cpu_us = data["gateway_cpu_s"] * 1e6 / total if total else 0.0
    idle, after = data["idle"], data["after_idle"]
    lines = [
        "# beatra-gateway soak",
        "",
        f"- date: {m['date']}; commit {m['commit']}",
        f"- CPU: {m['cpu_model']}, {m['cores']} cores; Python {m['python']}; {m['nginx']}",
        f"- one gateway process (`python -m gateway`, every feature on: auth, request ids, "
        f"metrics, JSON access log to {data['access_log']}, RPM/TPM limits with generous "
        f"budgets, Idempotency-Key) pinned to CPU 0; nginx (canned answers and a 500), the timed "
        f"SSE upstream and the load driver (Python, aiohttp, c={data['concurrency']}) on CPU 1",
        f"- {total:,} requests of {data['planned']:,} planned in {load['seconds']:,.1f} s: "
        f"**{load['rps']:,.0f} req/s**; gateway CPU {cpu_us:,.0f} us/request",
        f"- load average (1 min) just before the requests started: {data['loadavg'][0]:.1f} "
        f"on {m['cores']} cores (the soak was idle then, so that is other jobs), "
        f"{data['loadavg'][1]:.1f} at the end; req/s moves with other jobs, CPU per request "
        "far less",
        f"- answers that were not what their kind must get: **{sum(load['problems'].values())}**",
        "",
        "## Memory",
        "",
        "| | value |",
        "| --- | ---: |",
        f"| idle RSS after start (before load) | {rss_mb(idle['rss_kb']):.1f} MB |",
        f"| plateau: median RSS over the second quarter of the requests "
        f"| {numbers['plateau_mb']:.1f} MB |",
        f"| end of load | {numbers['end_mb']:.1f} MB |",
        f"| **growth after the plateau** | **{numbers['growth_after_plateau_mb']:+.1f} MB** |",
        f"| slope over the second half (least squares) "
        f"| {numbers['slope_mb_per_100k']:+.2f} MB per 100k requests |",
        f"| highest sample / peak (VmHWM) | {numbers['max_mb']:.1f} / "
        f"{rss_mb(after['hwm_kb']):.1f} MB |",
        f"| {after['wait_s']:.0f} s after the load | {rss_mb(after['rss_kb']):.1f} MB |",
        f"| open fds: idle / end of load / {after['wait_s']:.0f} s after (the wait ends when "
        f"they are back to idle, or after {IDLE_WAIT_S:.0f} s) "
        f"| {idle['fds']} / {samples[-1].fds} / {after['fds']} |",
        f"| threads: idle / end | {idle['threads']} / {samples[-1].threads} |",
        "",
        f"RSS over the run ({len(samples)} samples, every {data['sample_every']:,} requests; "
        f"{rss_mb(min(s.rss_kb for s in samples)):.1f} to {numbers['max_mb']:.1f} MB):",
        "",
        f"    {sparkline([s.rss_kb for s in samples])}",
        "",
        *_series_table(samples),
        "",
        "## Request mix",
        "",
        "Wrong API keys and unknown model names are unique per request; Idempotency-Keys come "
        f"from a pool of {data['idempotency_keys']:,} (replayed answers: "
        f"{load['replays']:,}); `hang_up` reads the first event of a slow stream and closes the "
        "connection (status 0 = no HTTP answer).",
        "",
        *_mix_table(load["statuses"], load["problems"]),
        "",
        "The gateway's own count (`beatra_http_requests_total` by route and status):",
        "",
        *[f"- {k}: {v:,.0f}" for k, v in sorted(data["gateway_statuses"].items())],
    ]
    if load["problem_samples"] or data["problems"]:
        lines += ["", "## Problems", ""]
        lines += [f"- {p}" for p in data["problems"]]
        lines += [f"- `{p}`" for p in load["problem_samples"]]
    return "\n".join(lines) + "\n"
