"""OpenTelemetry traces, opt-in: one span per request, one child span per upstream attempt.

Off (no OTLP endpoint configured) nothing here is built and nothing of OpenTelemetry is
imported: the request path pays one ``is None`` test in the middleware and one in the relay.
On, ``Tracing`` (the official SDK, OTLP over HTTP, a batch processor off the event loop's
thread) starts a SERVER span for every request, continuing the client's W3C ``traceparent``
when one is sent, and the relay starts a CLIENT span per upstream attempt whose own
``traceparent`` goes to the provider. Attributes follow the GenAI semantic conventions:
``gen_ai.system`` (the provider kind), ``gen_ai.request.model`` (what the client asked for),
``gen_ai.response.model`` (the catalog id that answered), ``gen_ai.usage.input_tokens`` and
``output_tokens``; retries and fallbacks are events on the request span; the request id is
``beatra.request_id``. Never a prompt, a completion, a header value or a key: only the fields
named here are ever set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.config.services import TelemetrySettings
    from gateway.http.asgi import RequestContext

# Error codes whose answers are the gateway's or the provider's failure (span status ERROR).
_SERVER_SIDE = 500


class Tracing:
    def __init__(self, settings: TelemetrySettings, provider_kinds: Mapping[str, str]) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
        from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        assert settings.otlp_endpoint is not None
        self._provider = TracerProvider(
            resource=Resource.create({"service.name": settings.service_name}),
            sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
        )
        exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint + "/v1/traces", timeout=5)
        self._provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
        self._tracer = self._provider.get_tracer("beatra-gateway")
        self._propagator = TraceContextTextMapPropagator()
        self._kinds = dict(provider_kinds)
        self._server, self._client = SpanKind.SERVER, SpanKind.CLIENT
        self._error = Status(StatusCode.ERROR)
        self._in_context = set_span_in_context

    def learn_providers(self, provider_kinds: Mapping[str, str]) -> None:
        """The providers of a reloaded configuration (their kinds name ``gen_ai.system``)."""
        self._kinds = dict(provider_kinds)

    def start_request(self, method: str, headers: Mapping[bytes, bytes], request_id: str) -> Any:
        carrier = {}
        for name in (b"traceparent", b"tracestate"):
            value = headers.get(name)
            if value is not None:
                carrier[name.decode()] = value.decode("latin-1")
        parent = self._propagator.extract(carrier) if carrier else None
        span = self._tracer.start_span(method, context=parent, kind=self._server)
        span.set_attribute("http.request.method", method)
        span.set_attribute("beatra.request_id", request_id)
        return span

    def end_request(self, span: Any, ctx: RequestContext, method: str, status: int) -> None:
        span.update_name(f"{method} {ctx.route}")
        span.set_attribute("http.route", ctx.route)
        span.set_attribute("http.response.status_code", status)
        if ctx.key_name is not None:
            span.set_attribute("beatra.key", ctx.key_name)  # the key's name, never the key
        if ctx.model_asked is not None:
            span.set_attribute("gen_ai.request.model", ctx.model_asked)
        if ctx.model_served is not None:
            span.set_attribute("gen_ai.response.model", ctx.model_served)
        if ctx.provider is not None:
            span.set_attribute("gen_ai.system", self._kinds.get(ctx.provider, ctx.provider))
        if ctx.prompt_tokens is not None:
            span.set_attribute("gen_ai.usage.input_tokens", ctx.prompt_tokens)
        if ctx.completion_tokens is not None:
            span.set_attribute("gen_ai.usage.output_tokens", ctx.completion_tokens)
        if ctx.attempts:
            span.set_attribute("beatra.upstream_attempts", ctx.attempts)
        if ctx.error_code is not None:
            span.set_attribute("error.type", ctx.error_code)
        if status >= _SERVER_SIDE:
            span.set_status(self._error)
        span.end()

    def start_attempt(self, parent: Any, provider: str, model: str, upstream: str) -> Any:
        """A child span for one call to a provider; ``traceparent`` of it for the request."""
        span = self._tracer.start_span(
            f"chat {upstream}", context=self._in_context(parent), kind=self._client
        )
        span.set_attribute("gen_ai.system", self._kinds.get(provider, provider))
        span.set_attribute("gen_ai.request.model", model)
        span.set_attribute("beatra.provider", provider)
        span.set_attribute("beatra.upstream_model", upstream)
        return span

    def traceparent(self, span: Any) -> str:
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=self._in_context(span))
        return carrier["traceparent"]

    def end_attempt(self, span: Any, outcome: str) -> None:
        span.set_attribute("beatra.outcome", outcome)
        if outcome != "ok":
            span.set_status(self._error)
        span.end()

    def event(self, span: Any, name: str, **attributes: str | int) -> None:
        span.add_event(name, attributes)

    def close(self) -> None:
        """Export what is left and stop (blocking: call it off the event loop)."""
        self._provider.shutdown()


def build_tracing(settings: TelemetrySettings, provider_kinds: Mapping[str, str]) -> Tracing | None:
    return None if settings.otlp_endpoint is None else Tracing(settings, provider_kinds)
