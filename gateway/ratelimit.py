"""Rate limits and load shedding for the chat surface: who may send how much, and what the
client is told about it.

Limits are token buckets per API key and per catalog model, for requests (RPM) and tokens (TPM).
A request reserves its estimated tokens (prompt + completion cap) before the call and the
reservation is reconciled with the real usage after it, streams included, so concurrent long
answers cannot overshoot a budget by more than one request. A refused request never reaches an
upstream: it gets ``429 rate_limited`` with an honest ``Retry-After``. Load beyond
``limits.max_concurrency`` in-flight chat requests is shed at once with ``503``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.asgi import RawHeaders
from gateway.chat_validate import ChatRequest
from gateway.errors import GatewayError
from gateway.metrics import Metrics
from gateway.routing import Candidate
from gateway.settings import KeySettings, Settings
from gateway.stores.base import Admission, BucketState, Demand, RateLimitStore
from providers.tokens import count_messages


def format_duration(seconds: float) -> str:
    """OpenAI's style for ``x-ratelimit-reset-*``: ``250ms``, ``1.5s``, ``6m0s``."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    if seconds < 60:
        return f"{round(seconds, 3):g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{round(rest):d}s"


@dataclass(slots=True)
class Reservation:
    """What an admitted request holds, to be settled once its real cost is known."""

    key_tokens: Demand | None
    model_tokens: Demand | None
    model_id: str
    estimate: int
    headers: RawHeaders = field(default_factory=list)


class LoadShedder:
    """Counts chat requests in flight; past the cap, new ones are refused before any work."""

    def __init__(self, limit: int, metrics: Metrics) -> None:
        self.limit = limit
        self.active = 0
        self._metrics = metrics

    def enter(self) -> None:
        if self.active >= self.limit:
            self._metrics.rate_limited.labels("concurrency").inc()
            raise GatewayError(
                "service_unavailable",
                "The gateway is at its concurrency limit; retry shortly.",
                headers={"retry-after": "1"},
            )
        self.active += 1

    def exit(self) -> None:
        self.active -= 1


class RateLimiter:
    def __init__(
        self,
        settings: Settings,
        store: RateLimitStore,
        metrics: Metrics,
        clock: Callable[[], float],
    ) -> None:
        self._limits = settings.limits
        self._metrics = metrics
        self._models = settings.models
        self._store = store
        self._clock = clock

    def _key_limits(self, key: KeySettings) -> tuple[int, int]:
        rpm = self._limits.key_rpm if key.rpm is None else key.rpm
        tpm = self._limits.key_tpm if key.tpm is None else key.tpm
        return rpm, tpm

    def _model_limits(self, model_id: str) -> tuple[int, int]:
        model = self._models[model_id]
        rpm = self._limits.model_rpm if model.rpm is None else model.rpm
        tpm = self._limits.model_tpm if model.tpm is None else model.tpm
        return rpm, tpm

    def estimate(self, chat: ChatRequest, model_id: str) -> int:
        body = chat.body
        cap = body.get("max_completion_tokens") or body.get("max_tokens")
        if not isinstance(cap, int):
            cap = self._models[model_id].max_output_tokens
        n = body.get("n")
        choices = n if isinstance(n, int) else 1
        return count_messages(body["messages"]) + cap * choices

    async def admit(
        self, key: KeySettings, plan: list[Candidate], chat: ChatRequest
    ) -> tuple[list[Candidate], Reservation | None]:
        """Reserve budget on the key and on the first plan model that has some.

        Returns the plan without the models that had none, and the reservation (None when
        nothing limits this request).
        """
        key_rpm, key_tpm = self._key_limits(key)
        models = list(dict.fromkeys(c.model.id for c in plan))
        limited = key_rpm or key_tpm or any(any(self._model_limits(m)) for m in models)
        if not limited:
            return plan, None
        now = self._clock()
        waits: list[float] = []
        refused: tuple[str, list[Demand], Admission] | None = None
        for model_id in models:
            estimate = self.estimate(chat, model_id)
            key_demands = _demands(f"key:{key.name}", key_rpm, key_tpm, estimate)
            model_rpm, model_tpm = self._model_limits(model_id)
            model_demands = _demands(f"model:{model_id}", model_rpm, model_tpm, estimate)
            admission = await self._store.acquire([*key_demands, *model_demands], now)
            if admission.allowed:
                reservation = Reservation(
                    key_tokens=_tokens(key_demands),
                    model_tokens=_tokens(model_demands),
                    model_id=model_id,
                    estimate=estimate,
                    headers=_headers(key_demands or model_demands, admission.states),
                )
                start = next(i for i, c in enumerate(plan) if c.model.id == model_id)
                return plan[start:], reservation
            waits.append(admission.retry_after_s)
            if not model_demands or (key_demands and not _fits(key_demands, admission)):
                refused = ("key", key_demands, admission)
                break  # the key itself is out of budget: no other model can help
            refused = ("model", key_demands or model_demands, admission)
        assert refused is not None
        scope, demands, admission = refused
        self._metrics.rate_limited.labels(scope).inc()
        whose = "this API key" if scope == "key" else "the model"
        headers = {"retry-after": str(max(1, math.ceil(min(waits))))}
        for name, value in _headers(demands, admission.states):
            headers[name.decode()] = value.decode()
        raise GatewayError(
            "rate_limited", f"The rate limit of {whose} is reached; retry later.", headers=headers
        )

    async def settle(
        self, reservation: Reservation, served_model: str | None, used: int | None
    ) -> None:
        """Reconcile the reserved tokens with what was really used (None: unknown, keep it)."""
        if used is None:
            return
        now = self._clock()
        refund = reservation.estimate - used
        if reservation.key_tokens is not None and refund:
            await self._store.adjust(reservation.key_tokens, refund, now)
        if reservation.model_tokens is not None:
            if served_model in (None, reservation.model_id):
                if refund:
                    await self._store.adjust(reservation.model_tokens, refund, now)
            else:
                # Another model answered (fallback): the reserved model gets its tokens back.
                await self._store.adjust(reservation.model_tokens, reservation.estimate, now)
        if served_model is not None and served_model != reservation.model_id:
            _, tpm = self._model_limits(served_model)
            if tpm:
                demand = Demand(f"model:{served_model}:tokens", tpm, 0)
                await self._store.adjust(demand, -used, now)


def _demands(scope: str, rpm: int, tpm: int, estimate: int) -> list[Demand]:
    demands = []
    if rpm:
        demands.append(Demand(f"{scope}:requests", rpm, 1))
    if tpm:
        demands.append(Demand(f"{scope}:tokens", tpm, estimate))
    return demands


def _tokens(demands: list[Demand]) -> Demand | None:
    return next((d for d in demands if d.bucket.endswith(":tokens")), None)


def _fits(demands: list[Demand], admission: Admission) -> bool:
    """Whether the first ``len(demands)`` demands of a refused admission were satisfiable."""
    return all(
        state.remaining >= min(d.amount, d.capacity)
        for d, state in zip(demands, admission.states, strict=False)
    )


def _headers(demands: list[Demand], states: tuple[BucketState, ...]) -> RawHeaders:
    headers: RawHeaders = []
    for demand, state in zip(demands, states, strict=False):
        kind = b"tokens" if demand.bucket.endswith(":tokens") else b"requests"
        headers += [
            (b"x-ratelimit-limit-" + kind, str(demand.capacity).encode()),
            (b"x-ratelimit-remaining-" + kind, str(state.remaining).encode()),
            (b"x-ratelimit-reset-" + kind, format_duration(state.reset_s).encode()),
        ]
    return headers
