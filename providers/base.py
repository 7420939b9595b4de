"""The contract between the gateway and chat adapters.

An adapter turns one canonical (OpenAI-shaped) chat call into a provider's wire format and back.
It sees no API keys of clients, no limits, routing or metrics: only a ``ChatCall``. Every failure
leaves an adapter as one ``UpstreamError`` whose ``kind`` the gateway maps to its error envelope.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from providers.scrub import Scrubber

JSON = dict[str, Any]
OptionsT = TypeVar("OptionsT")

UpstreamErrorKind = Literal[
    "client_error",  # the provider rejected the request as the client's mistake (400, 404, 422)
    "auth",  # the provider refused the operator's credentials (401, 403)
    "rate_limited",  # the provider's own rate limit (429)
    "server",  # 5xx, malformed body or stream, unexpected status
    "timeout",  # connect, first byte, between chunks or total deadline passed
    "connect",  # connection refused or reset
]

RETRYABLE_KINDS: frozenset[str] = frozenset({"rate_limited", "server", "timeout", "connect"})


# The integers a JSON body can carry exactly here: orjson reads a longer literal as a float.
MIN_JSON_INT = -(2**63)
MAX_JSON_INT = 2**64 - 1


def as_int(value: Any) -> int | None:
    """An integer as JSON Schema counts one (``3`` and ``3.0`` alike; a boolean is not) within
    the 64-bit range, or None: the spec calls a field an integer, so a client may send either
    spelling."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer() and MIN_JSON_INT <= value < 2**64:
        return int(value)
    return None


class UpstreamError(Exception):
    """The one exception an adapter raises; ``message`` is safe to show a client.

    ``param`` is the request field a provider's client error named (OpenAI's ``param``), when it
    named one that is a plain field path.
    """

    def __init__(
        self,
        kind: UpstreamErrorKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind: UpstreamErrorKind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.param = param

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS

    def __repr__(self) -> str:
        return f"UpstreamError({self.kind!r}, {self.message!r}, status={self.status})"


@dataclass(slots=True)
class ChatCall:
    """One chat request as an adapter receives it.

    ``body`` is the validated OpenAI-shaped request; adapters must not mutate it (the relay may
    send the same body to several deployments). ``upstream_model`` is the provider's own model id.
    ``deadline`` (on the event loop's clock, ``loop.time()``) is when the whole request must have
    its answer (a stream: its first event); every wait of the call is capped at it.
    """

    body: JSON
    upstream_model: str
    request_id: str
    stream: bool = False
    include_usage: bool = False
    deadline: float | None = None
    traceparent: str | None = None  # W3C trace context for the provider, when traces are on
    trace: Any = None  # the gateway's request span (opaque here; adapters never touch it)


def call_headers(call: ChatCall) -> dict[str, str]:
    """The per-call headers every chat adapter sends: the request id, and the trace context."""
    if call.traceparent is None:
        return {"x-request-id": call.request_id}
    return {"x-request-id": call.request_id, "traceparent": call.traceparent}


@dataclass(slots=True)
class ProviderSettings:
    """What the configuration says about one provider, as adapters need it."""

    name: str
    kind: str
    base_url: str = ""
    api_key: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    total_timeout: float = 600.0
    max_connections: int = 256
    # ``[providers.NAME.options]``, checked at load against the ``Options`` schema of each
    # adapter of the kind (see ``read_options``).
    options: Mapping[str, Any] = field(default_factory=dict)
    # Cleans the provider's error text of the config's secrets and this provider's upstream
    # model ids, built once from the whole configuration when it is loaded (None: a scrubber
    # that knows only ``api_key``).
    scrubber: Scrubber | None = None


def read_options(schema: type[OptionsT], options: Mapping[str, Any]) -> OptionsT:
    """An adapter's typed options: the fields of ``schema`` (a dataclass) that ``options``
    gives, the schema's defaults for the rest. Other keys belong to the kind's other adapter.

    The configuration loader has checked every key and type against the schema already, so an
    adapter reads typed values; nothing here converts them again.
    """
    names = {spec.name for spec in dataclasses.fields(schema)}  # type: ignore[arg-type]
    return schema(**{name: value for name, value in options.items() if name in names})


class FinalBatch(list[JSON]):
    """A stream's last batch: the provider's end marker arrived with it. An adapter may yield
    its last batch as one, so the gateway sends it and its own end of stream in one write
    (for a short answer that came in one read: the whole response in one syscall). A stream
    still ends only when its iterator does; this is a hint about the batch, nothing more."""

    __slots__ = ()


class ChatAdapter(Protocol):
    """What every chat adapter offers; ``kind`` names it in the configuration."""

    kind: str

    async def start(self) -> None:
        """Open pooled connections; called once by the gateway's lifespan."""

    async def close(self) -> None:
        """Release everything ``start`` opened."""

    async def complete(self, call: ChatCall) -> JSON:
        """Return an OpenAI ``chat.completion`` object (``model`` is rewritten by the gateway)."""

    def stream(self, call: ChatCall) -> AsyncIterator[list[JSON]]:
        """Yield OpenAI ``chat.completion.chunk`` objects as they arrive from the provider, in
        non-empty batches: the chunks that arrived together (the gateway writes a batch at once).

        The stream ends normally only when the provider said it is complete; a stream that breaks
        raises ``UpstreamError``. When ``call.include_usage`` is set, the last chunk carries usage.
        """


def classify_status(
    status: int, message: str, retry_after: float | None, *, param: str | None = None
) -> UpstreamError:
    """Map a provider's non-2xx HTTP status to an ``UpstreamError`` (shared by HTTP adapters);
    ``param`` is kept for a client error only."""
    if status in (401, 403):
        return UpstreamError(
            "auth", "The provider rejected the gateway's credentials.", status=status
        )
    if status == 429:
        return UpstreamError(
            "rate_limited", "The provider is rate limiting.", status=status, retry_after=retry_after
        )
    if status in (408, 504):
        return UpstreamError("timeout", "The provider timed out.", status=status)
    if 400 <= status < 500 and status != 404:
        return UpstreamError(
            "client_error",
            message or "The provider rejected the request.",
            status=status,
            param=param,
        )
    # 404 means the operator configured a model or path the provider does not know: not the
    # client's fault, so it is treated like a server failure (and another deployment may work).
    return UpstreamError(
        "server", f"The provider failed with HTTP {status}.", status=status, retry_after=retry_after
    )
