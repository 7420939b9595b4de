"""Rate limits and load shedding for chat and embeddings (and the request budget of music):
who may send how much, and what the client is told about it.

Limits are token buckets per API key and per catalog model, for requests (RPM) and tokens (TPM).
A request reserves its estimated tokens (prompt + completion cap) before the call and the
reservation is reconciled with the real usage after it, streams included, so concurrent long
answers cannot overshoot a budget by more than one request. A refused request never reaches an
upstream: it gets ``429 rate_limited`` with an honest ``Retry-After``. Load beyond
``limits.max_concurrency`` in-flight chat and embeddings requests is shed at once with ``503``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.config.settings import KeySettings, ModelSettings, Settings
from gateway.contract.chat_validate import ChatRequest
from gateway.contract.errors import GatewayError
from gateway.http.asgi import RawHeaders
from gateway.metrics import Metrics
from gateway.policy.routing import Candidate
from gateway.stores.base import Admission, Demand, RateLimitStore
from providers.base import as_int
from providers.tokens import TOKENS_PER_MESSAGE, TOKENS_PER_REPLY


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
    """Counts chat and embeddings requests in flight; past the cap, new ones are refused before
    any work."""

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


class _Limits:
    """One scope's limits, bucket names and constant header values, computed once at start."""

    __slots__ = ("limit_requests", "limit_tokens", "request_demand", "rpm", "tokens_bucket", "tpm")

    def __init__(self, scope: str, rpm: int, tpm: int) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self.tokens_bucket = f"{scope}:tokens"
        # Taking one request never changes, so that demand is built once and shared.
        self.request_demand = Demand(f"{scope}:requests", rpm, 1) if rpm else None
        self.limit_requests = str(rpm).encode()
        self.limit_tokens = str(tpm).encode()

    @classmethod
    def of(cls, scope: str, owner: KeySettings | ModelSettings, rpm: int, tpm: int) -> _Limits:
        """The owner's own limits where it sets them, else the given defaults."""
        return cls(
            scope,
            rpm if owner.rpm is None else owner.rpm,
            tpm if owner.tpm is None else owner.tpm,
        )

    @property
    def any(self) -> bool:
        return bool(self.rpm or self.tpm)

    def demands(self, estimate: int) -> tuple[list[Demand], Demand | None]:
        """The demands of one request, and the token demand among them (if any)."""
        demands = [self.request_demand] if self.request_demand is not None else []
        tokens = None
        if self.tpm:
            tokens = Demand(self.tokens_bucket, self.tpm, estimate)
            demands.append(tokens)
        return demands, tokens


def prompt_estimate(messages: list[Any]) -> int:
    """A cheap estimate of prompt tokens: about four characters a token, plus framing.

    It only sizes a reservation that is reconciled with the provider's real count afterwards, so
    it favours speed over precision (no tokenizer pass over the prompt).
    """
    chars = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                text = part.get("text") if isinstance(part, dict) else None
                if isinstance(text, str):
                    chars += len(text)
    return chars // 4 + TOKENS_PER_MESSAGE * len(messages) + TOKENS_PER_REPLY


class RateLimiter:
    def __init__(
        self,
        settings: Settings,
        store: RateLimitStore,
        metrics: Metrics,
        clock: Callable[[], float],
    ) -> None:
        defaults = settings.limits
        self._models = settings.models
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._key_limits = {
            key.name: _Limits.of(f"key:{key.name}", key, defaults.key_rpm, defaults.key_tpm)
            for key in settings.keys.values()
        }
        self._model_limits = {
            model.id: _Limits.of(f"model:{model.id}", model, defaults.model_rpm, defaults.model_tpm)
            for model in settings.models.values()
        }
        self._any_model_limited = any(limits.any for limits in self._model_limits.values())

    def estimate(self, chat: ChatRequest, model_id: str) -> int:
        body = chat.body
        cap = as_int(body.get("max_completion_tokens") or body.get("max_tokens"))
        if cap is None:
            cap = self._models[model_id].max_output_tokens
        choices = as_int(body.get("n")) or 1
        return prompt_estimate(body["messages"]) + cap * choices

    async def admit(
        self, key: KeySettings, plan: list[Candidate], chat: ChatRequest | int | None
    ) -> tuple[list[Candidate], Reservation | None]:
        """Reserve budget on the key and on the first plan model that has some.

        ``chat`` sizes the token reservation; an ``int`` is a cost known before the call (an
        embeddings input: prompt tokens only); without one (a music task) only requests count.

        Returns the plan without the models that had none, and the reservation (None when
        nothing limits this request).
        """
        key_limits = self._key_limits[key.name]
        if not key_limits.any and not self._any_model_limited:
            return plan, None
        now = self._clock()
        waits: list[float] = []
        refused: tuple[str, _Limits, Admission] | None = None
        previous = None
        for position, candidate in enumerate(plan):
            model_id = candidate.model.id
            if model_id == previous:
                continue  # the same model's next deployment: the same budget
            previous = model_id
            model_limits = self._model_limits[model_id]
            estimate = 0
            if chat is not None and (key_limits.tpm or model_limits.tpm):
                estimate = chat if isinstance(chat, int) else self.estimate(chat, model_id)
            key_demands, key_tokens = key_limits.demands(estimate)
            model_demands, model_tokens = model_limits.demands(estimate)
            admission = await self._store.acquire(key_demands + model_demands, now)
            shown = key_limits if key_demands else model_limits
            if admission.allowed:
                reservation = Reservation(
                    key_tokens=key_tokens,
                    model_tokens=model_tokens,
                    model_id=model_id,
                    estimate=estimate,
                    headers=_headers(shown, admission.states),
                )
                return (plan[position:] if position else plan), reservation
            waits.append(admission.retry_after_s)
            if not model_demands or (key_demands and not _fits(key_demands, admission)):
                refused = ("key", key_limits, admission)
                break  # the key itself is out of budget: no other model can help
            refused = ("model", shown, admission)
        assert refused is not None
        scope, limits, admission = refused
        self._metrics.rate_limited.labels(scope).inc()
        whose = "this API key" if scope == "key" else "the model"
        headers = {"retry-after": str(max(1, math.ceil(min(waits))))}
        for name, value in _headers(limits, admission.states):
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
        refund = reservation.estimate - used
        changes: list[tuple[Demand, float]] = []
        if reservation.key_tokens is not None and refund:
            changes.append((reservation.key_tokens, refund))
        if reservation.model_tokens is not None:
            if served_model in (None, reservation.model_id):
                if refund:
                    changes.append((reservation.model_tokens, refund))
            else:
                # Another model answered (fallback): the reserved model gets its tokens back.
                changes.append((reservation.model_tokens, reservation.estimate))
        if served_model is not None and served_model != reservation.model_id:
            limits = self._model_limits[served_model]
            if limits.tpm:
                changes.append((Demand(limits.tokens_bucket, limits.tpm, 0), -used))
        if changes:  # one store call for every bucket (one round trip with Redis)
            await self._store.adjust(changes, self._clock())


def _fits(demands: list[Demand], admission: Admission) -> bool:
    """Whether the first ``len(demands)`` demands of a refused admission were satisfiable."""
    return all(
        remaining >= min(d.amount, d.capacity)
        for d, (remaining, _) in zip(demands, admission.states, strict=False)
    )


def _headers(limits: _Limits, states: list[tuple[int, float]]) -> RawHeaders:
    """OpenAI's x-ratelimit-* headers for one scope; ``states`` start with that scope's."""
    headers: RawHeaders = []
    position = 0
    if limits.rpm:
        remaining, reset_s = states[0]
        headers += [
            (b"x-ratelimit-limit-requests", limits.limit_requests),
            (b"x-ratelimit-remaining-requests", str(remaining).encode()),
            (b"x-ratelimit-reset-requests", format_duration(reset_s).encode()),
        ]
        position = 1
    if limits.tpm:
        remaining, reset_s = states[position]
        headers += [
            (b"x-ratelimit-limit-tokens", limits.limit_tokens),
            (b"x-ratelimit-remaining-tokens", str(remaining).encode()),
            (b"x-ratelimit-reset-tokens", format_duration(reset_s).encode()),
        ]
    return headers
