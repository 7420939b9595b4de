"""The report's side-by-side section: the gateway, the floor, the gateway on Redis and a peer
gateway at c=32, from one run, with the ratios the README quotes."""

from __future__ import annotations

from typing import Any, Protocol


def subject(target: str) -> str:
    """Whose CPU a wrk target's runs are charged to."""
    for name in ("gateway-redis", "litellm", "gateway"):
        if target.startswith(name):
            return name
    return "floor"


class _Runs(Protocol):
    def med(self, key: str) -> float | None: ...

    def cpu_us_per_request(self, proc: str) -> float | None: ...


def _row(label: str, runs: _Runs, proc: str, base_rps: float | None) -> str:
    rps, cpu = runs.med("rps"), runs.cpu_us_per_request(proc)
    if rps is None:
        return f"| {label} | n/a | n/a | n/a |"
    ratio = f"{rps / base_rps:.2f}x" if base_rps else "n/a"
    cpu_text = f"{cpu:,.0f}" if cpu is not None else "n/a"
    return f"| {label} | {rps:,.0f} | {cpu_text} | {ratio} |"


def side_by_side(runs: Any, wrk: dict[str, list[dict[str, Any]]]) -> list[str]:
    """``runs(target, c)`` gives a target's runs; only the targets this run measured appear."""
    if not any(key.startswith(("gateway-redis@", "gateway-responses@", "litellm")) for key in wrk):
        return []
    out = [
        "## Side by side, c=32",
        "",
        "req/s (median) and CPU us per request of the process under test; the ratio is to the "
        "aiohttp floor's req/s in the same load.",
        "",
        "| target | req/s | CPU us/req | vs floor |",
        "| --- | ---: | ---: | ---: |",
    ]
    for load, suffix in (("JSON", ""), ("SSE", "-sse")):
        floor = runs("floor" + suffix, 32).med("rps")
        for target in ("floor", "gateway", "gateway-responses", "gateway-redis", "litellm"):
            if f"{target}{suffix}@32" in wrk:
                label = f"{load}: {target}"
                out.append(_row(label, runs(target + suffix, 32), subject(target), floor))
    redis, memory = runs("gateway-redis", 32).med("rps"), runs("gateway", 32).med("rps")
    if redis and memory:
        out += ["", f"Redis backend / memory backend, JSON c=32: **{100 * redis / memory:.0f} %**."]
        redis_p50, memory_p50 = (
            runs("gateway-redis", 1).med("p50_ms"),
            runs("gateway", 1).med("p50_ms"),
        )
        if redis_p50 is not None and memory_p50 is not None:
            out += [
                f"Redis backend's added p50 at c=1, over memory: {redis_p50 - memory_p50:+.2f} ms."
            ]
    peer, gateway = runs("litellm", 32).med("rps"), memory
    if peer and gateway:
        out += [f"Gateway / LiteLLM, JSON c=32: **{gateway / peer:.1f}x**."]
    out.append("")
    return out
