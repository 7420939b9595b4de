"""Every Prometheus metric of the gateway, declared in one place, in a registry per app.

Labels are bounded by design: route templates, methods, status codes, catalog model ids, provider
names and fixed outcome words; never raw paths, request ids, keys or user input. The metric
objects are the lean ones of ``gateway.metric_types`` (an update is a field increment; label
children are cached, so the hot path pays a dict lookup); prometheus-client renders them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.metric_types import (
    Counter,
    CounterChild,
    Gauge,
    Histogram,
    HistogramChild,
    MetricSet,
)

if TYPE_CHECKING:
    from gateway.http.asgi import RequestContext

# LLM latencies run from milliseconds (cached, tiny) to minutes (long generations).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
UPSTREAM_OUTCOMES = {
    "client_error": "client_error",
    "auth": "auth_error",
    "rate_limited": "rate_limited",
    "server": "server_error",
    "connect": "server_error",
    "timeout": "timeout",
}


class _CooldownCollector(Collector):
    def __init__(self, source: Callable[[], Iterable[str]]) -> None:
        self._source = source

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "beatra_deployment_cooling",
            "1 while a deployment rests after failures (circuit open).",
            labels=["deployment"],
        )
        for deployment in self._source():
            family.add_metric([deployment], 1.0)
        yield family


class _ConfigInfoCollector(Collector):
    """``beatra_config_info{sha256}`` = 1: which configuration file is live."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "beatra_config_info",
            "The live configuration: the sha256 of its file's text.",
            labels=["sha256"],
        )
        if self._metrics.config_sha256:
            family.add_metric([self._metrics.config_sha256], 1.0)
        yield family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._per_answer: dict[tuple[str, str, int], tuple[CounterChild, HistogramChild]] = {}
        self._per_attempt: dict[tuple[str, str, str], tuple[CounterChild, HistogramChild]] = {}
        r = MetricSet()
        self.registry.register(r)
        self.http_requests = Counter(
            "beatra_http_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "beatra_http_request_duration_seconds",
            "Time from request to the end of the response, by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inflight = Gauge("beatra_inflight_requests", "Requests being served.", registry=r)
        self.open_streams = Gauge("beatra_open_streams", "SSE streams open to clients.", registry=r)
        self.disconnects = Counter(
            "beatra_client_disconnects",
            "Clients that went away before their answer (logged as 499; not failures).",
            ["route"],
            registry=r,
        )
        self.upstream_requests = Counter(
            "beatra_upstream_requests",
            "Calls to providers by provider, catalog model and outcome.",
            ["provider", "model", "outcome"],
            registry=r,
        )
        self.upstream_duration = Histogram(
            "beatra_upstream_duration_seconds",
            "Time waiting on a provider per attempt (to the first chunk for streams).",
            ["provider", "model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "beatra_time_to_first_token_seconds",
            "Time from request to the first streamed chunk sent to the client.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.overhead = Histogram(
            "beatra_gateway_overhead_seconds",
            "Time a proxied request spent in the gateway itself (total minus upstream wait).",
            ["route"],
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "beatra_tokens",
            "Tokens by catalog model and kind (prompt, completion).",
            ["model", "kind"],
            registry=r,
        )
        self.fallbacks = Counter(
            "beatra_fallbacks",
            "Moves to the next deployment in a plan after a failure.",
            ["model"],
            registry=r,
        )
        self.retries = Counter(
            "beatra_retries",
            "Repeated attempts on the same deployment after a retryable failure.",
            ["model"],
            registry=r,
        )

        self.idempotency = Counter(
            "beatra_idempotency",
            "Idempotency-Key outcomes other than a first run: replay, conflict, in_progress, "
            "unreplayable.",
            ["outcome"],
            registry=r,
        )
        self.rate_limited = Counter(
            "beatra_rate_limited",
            "Requests refused by a rate limit or the concurrency cap, by scope.",
            ["scope"],
            registry=r,
        )

        self.stream_errors = Counter(
            "beatra_stream_errors",
            "Streams that failed after their first byte (ended with an error event), by "
            "catalog model and error code.",
            ["model", "code"],
            registry=r,
        )
        self.tasks = Counter(
            "beatra_tasks",
            "Async tasks that reached a terminal state, by type and status.",
            ["type", "status"],
            registry=r,
        )
        self.tasks_running = Gauge(
            "beatra_tasks_running", "Tasks the runner is driving at a provider.", registry=r
        )
        self.images = Counter(
            "beatra_images",
            "Images made, by catalog model and kind (generation, edit).",
            ["model", "kind"],
            registry=r,
        )
        self.config_reloads = Counter(
            "beatra_config_reloads",
            "Configuration reloads, by result (applied; rejected: the old config stays).",
            ["result"],
            registry=r,
        )
        self.config_sha256 = ""
        self.registry.register(_ConfigInfoCollector(self))
        self.artifact_bytes = Counter(
            "beatra_artifact_bytes",
            "Bytes stored as artifacts, by kind (upload, output).",
            ["kind"],
            registry=r,
        )

    def watch_cooldowns(self, source: Callable[[], Iterable[str]]) -> None:
        self.registry.register(_CooldownCollector(source))

    def observe_request(
        self, route: str, method: str, status: int, duration: float, ctx: RequestContext
    ) -> None:
        # The children of one (route, method, status) found with one lookup, not two.
        bound = self._per_answer.get((route, method, status))
        if bound is None:
            bound = self._per_answer[(route, method, status)] = (
                self.http_requests.labels(route, method, str(status)),
                self.http_duration.labels(route),
            )
        bound[0].value += 1.0
        bound[1].observe(duration)
        if ctx.disconnected:
            self.disconnects.labels(route).inc()
        if ctx.attempts:  # the overhead series exists only for routes that call providers
            self.overhead.labels(route).observe(max(0.0, duration - ctx.upstream_seconds))
        if ctx.model_served is not None:
            if ctx.prompt_tokens:
                self.tokens.labels(ctx.model_served, "prompt").inc(ctx.prompt_tokens)
            if ctx.completion_tokens:
                self.tokens.labels(ctx.model_served, "completion").inc(ctx.completion_tokens)
            if ctx.ttft is not None:
                self.ttft.labels(ctx.model_served).observe(ctx.ttft)

    def upstream_attempt(self, provider: str, model: str, outcome: str, seconds: float) -> None:
        bound = self._per_attempt.get((provider, model, outcome))
        if bound is None:
            bound = self._per_attempt[(provider, model, outcome)] = (
                self.upstream_requests.labels(provider, model, outcome),
                self.upstream_duration.labels(provider, model),
            )
        bound[0].value += 1.0
        bound[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
