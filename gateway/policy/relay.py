"""The relay: runs a routing plan against the adapters until one deployment answers.

Retries (with backoff, jitter and the provider's Retry-After) and fallback to the next deployment
happen only here and only before the first byte reaches the client: ``complete`` returns a whole
answer, ``open_stream`` returns once the first chunk is in hand. One deadline
(``request_timeout_s``) covers every attempt and fallback of a request: each attempt's waits are
capped at what is left of it, and a retry or fallback starts only while some is left. Failing
deployments cool down (the circuit breaker), and a plan whose deployments are all cooling fails
fast with ``model_unavailable``. An ``UpstreamError`` that ends the plan becomes the contract's
error by ``gateway.contract.errors.from_upstream``. What the run took (attempts, upstream
seconds) comes back as a value whichever way it ends: ``Relayed`` beside the answer,
``RelayFailed`` around the client's error, ``RelayCanceled`` when the request was canceled.

``PlanRelay`` is the loop, generic in its adapters and given the one call each attempt makes
(``run``); ``Relay`` is chat's, over ``ChatAdapter``s; the embeddings endpoint runs a
``PlanRelay`` over ``EmbeddingsAdapter``s.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from typing import Any, Generic, TypeVar

import structlog

from gateway.config.settings import RelaySettings
from gateway.contract.errors import GatewayError, from_upstream
from gateway.metrics import UPSTREAM_OUTCOMES, Metrics
from gateway.policy.routing import Candidate
from gateway.stores.base import CooldownStore
from gateway.telemetry import Tracing
from providers.base import JSON, ChatAdapter, ChatCall, UpstreamError

T = TypeVar("T")
A = TypeVar("A")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
_log = structlog.get_logger("beatra.relay")


def _complete_with(adapter: ChatAdapter, call: ChatCall) -> Awaitable[JSON]:
    return adapter.complete(call)


FirstChunk = tuple[list[JSON], AsyncIterator[list[JSON]]]
"""An open stream: its first batch of chunks, and an iterator of the other batches."""


def _first_chunk(adapter: ChatAdapter, call: ChatCall) -> Awaitable[FirstChunk]:
    return first_batch(adapter.stream(call))


async def first_batch(chunks: AsyncIterator[list[JSON]]) -> FirstChunk:
    """An open stream once its first batch is in hand (an empty stream is the provider's
    failure; the stream is closed when the first batch fails)."""
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        raise UpstreamError("server", "The provider's stream was empty.") from None
    except BaseException:
        await chunks.aclose()  # type: ignore[attr-defined]
        raise
    return first, chunks


Relayed = tuple[Candidate, T, int, float]
"""A plan that got its answer: who served it, the answer, the calls made and the seconds spent
waiting on providers. (A plain tuple: it is built on every request.)"""


class RelayFailed(Exception):  # noqa: N818 - the plan's outcome, like Relayed
    """The plan ended without an answer: ``error`` is what the client is told."""

    def __init__(self, error: GatewayError, attempts: int, upstream_seconds: float) -> None:
        super().__init__(error.message)
        self.error = error
        self.attempts = attempts
        self.upstream_seconds = upstream_seconds


class RelayCanceled(asyncio.CancelledError):
    """The request was canceled (client gone, shutdown) while the plan ran; it propagates as
    the cancellation it is, carrying what the run took so far."""

    def __init__(self, attempts: int, upstream_seconds: float) -> None:
        super().__init__()
        self.attempts = attempts
        self.upstream_seconds = upstream_seconds


class PlanRelay(Generic[A]):
    def __init__(
        self,
        adapters: Mapping[str, A],
        settings: RelaySettings,
        cooldowns: CooldownStore,
        metrics: Metrics,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._tracing = tracing  # None: traces are off (gateway.telemetry)
        self._adapters = adapters
        self._settings = settings
        self._cooldowns = cooldowns
        self._metrics = metrics
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()

    def run(
        self, plan: list[Candidate], call: ChatCall, attempt: Callable[[A, ChatCall], Awaitable[T]]
    ) -> Coroutine[Any, Any, Relayed[T]]:
        """Run the plan with ``attempt`` as the call to each deployment's adapter."""
        return self._run(plan, call, attempt)

    async def _run(
        self,
        plan: list[Candidate],
        call: ChatCall,
        attempt: Callable[[A, ChatCall], Awaitable[T]],
    ) -> Relayed[T]:
        attempts = 0
        upstream_seconds = 0.0
        # Traces on and a request span to hang the attempts' spans from (gateway.telemetry).
        tracer = self._tracing if call.trace is not None else None
        try:
            last_error: UpstreamError | None = None
            tried_deployments = 0
            # On the event loop's clock, the one the HTTP client's timers run on.
            loop_time = asyncio.get_running_loop().time
            deadline = loop_time() + self._settings.request_timeout_s
            for candidate in plan:
                deployment = candidate.deployment
                if tried_deployments and loop_time() >= deadline:
                    break  # no time left for a fallback
                if not await self._cooldowns.available(deployment.id, self._clock()):
                    continue
                if tried_deployments:
                    self._metrics.fallbacks.labels(candidate.model.id).inc()
                    if tracer is not None:
                        tracer.event(call.trace, "fallback", deployment=deployment.id)
                tried_deployments += 1
                routed = ChatCall(
                    body=call.body,
                    upstream_model=deployment.model,
                    request_id=call.request_id,
                    stream=call.stream,
                    include_usage=call.include_usage,
                    deadline=deadline,
                )
                for number in range(self._settings.attempts_per_deployment):
                    if number:
                        self._metrics.retries.labels(candidate.model.id).inc()
                        if tracer is not None:
                            tracer.event(
                                call.trace, "retry", deployment=deployment.id, attempt=number
                            )
                    attempts += 1
                    span = None
                    if tracer is not None:
                        span = tracer.start_attempt(
                            call.trace, deployment.provider, candidate.model.id, deployment.model
                        )
                        routed.traceparent = tracer.traceparent(span)
                    started = time.perf_counter()
                    try:
                        result = await attempt(self._adapters[deployment.provider], routed)
                    except asyncio.CancelledError:
                        # The client went away mid-call: not a provider failure, but worth counting.
                        waited = time.perf_counter() - started
                        upstream_seconds += waited
                        self._metrics.upstream_attempt(
                            deployment.provider, candidate.model.id, "canceled", waited
                        )
                        if tracer is not None:
                            tracer.end_attempt(span, "canceled")
                        raise
                    except UpstreamError as error:
                        waited = time.perf_counter() - started
                        upstream_seconds += waited
                        outcome = UPSTREAM_OUTCOMES[error.kind]
                        self._metrics.upstream_attempt(
                            deployment.provider, candidate.model.id, outcome, waited
                        )
                        if tracer is not None:
                            tracer.end_attempt(span, outcome)
                        last_error = error
                        delay = await self._after_failure(candidate, error, number, call.request_id)
                        if delay is None or loop_time() + delay >= deadline:
                            break  # move on (a fallback, if the deadline leaves time for one)
                        await self._sleep(delay)
                        continue
                    waited = time.perf_counter() - started
                    upstream_seconds += waited
                    self._metrics.upstream_attempt(
                        deployment.provider, candidate.model.id, "ok", waited
                    )
                    if tracer is not None:
                        tracer.end_attempt(span, "ok")
                    await self._cooldowns.success(deployment.id)
                    return candidate, result, attempts, upstream_seconds
            if last_error is None:
                raise GatewayError("model_unavailable")
            raise from_upstream(last_error)
        except GatewayError as error:
            raise RelayFailed(error, attempts, upstream_seconds) from None
        except asyncio.CancelledError:
            raise RelayCanceled(attempts, upstream_seconds) from None

    async def _after_failure(
        self, candidate: Candidate, error: UpstreamError, number: int, request_id: str
    ) -> float | None:
        """Decide what follows a failed attempt: seconds to wait before a retry, or None to move on.

        Raises at once for the client's own mistakes, which no other deployment would accept.
        """
        deployment = candidate.deployment
        if error.kind == "client_error":
            raise from_upstream(error)
        if error.kind == "auth":
            _log.error(
                "upstream_auth_failed",
                request_id=request_id,
                provider=deployment.provider,
                deployment=deployment.id,
                status=error.status,
            )
        retry_after = error.retry_after
        cool_for = None
        if error.kind == "auth" or (
            retry_after is not None and retry_after > self._settings.max_retry_after_s
        ):
            # Waiting this request out is pointless; rest the deployment, try the next one.
            cool_for = retry_after if retry_after is not None else self._settings.cooldown_s
        cooling = await self._cooldowns.failure(deployment.id, self._clock(), cool_for)
        if cooling or number + 1 >= self._settings.attempts_per_deployment:
            return None
        if error.kind == "timeout" and not self._settings.retry_on_timeout:
            # The timed-out call may still be running (and billed) upstream: do not repeat it
            # on the same deployment; the next deployment still gets its turn.
            return None
        backoff = min(
            self._settings.backoff_max_s, self._settings.backoff_base_s * (2**number)
        ) * self._rng.uniform(0.5, 1.0)
        return float(max(backoff, retry_after or 0.0))


class Relay(PlanRelay[ChatAdapter]):
    """Chat's relay: whole answers and streams."""

    def complete(self, plan: list[Candidate], call: ChatCall) -> Coroutine[Any, Any, Relayed[JSON]]:
        """Run the plan for a whole answer. (A plain function returning the loop's coroutine:
        one frame less on every resumption of the request.)"""
        return self._run(plan, call, _complete_with)

    def open_stream(
        self, plan: list[Candidate], call: ChatCall
    ) -> Coroutine[Any, Any, Relayed[FirstChunk]]:
        """Run the plan until a stream's first chunk is in hand."""
        return self._run(plan, call, _first_chunk)
