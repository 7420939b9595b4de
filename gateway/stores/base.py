"""The protocols of the gateway's shared state, implemented once per backend.

``memory`` implements them for one process; a shared backend implements the same protocols so
that several replicas behave as one gateway. Times are seconds on the gateway's clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.contract.errors import DependencyUnavailable


class CooldownStore(Protocol):
    """The circuit breaker of deployments: which ones are resting after failures."""

    async def available(self, deployment_id: str, now: float) -> bool:
        """False while the deployment is cooling down."""

    async def failure(self, deployment_id: str, now: float, cool_for: float | None) -> bool:
        """Record a retryable failure; ``cool_for`` cools at once (e.g. a long Retry-After).

        Returns True when the deployment is now cooling down.
        """

    async def success(self, deployment_id: str) -> None:
        """A success closes the breaker again."""

    def cooling(self, now: float) -> list[str]:
        """The deployments cooling down at ``now`` (for metrics)."""


@dataclass(slots=True)
class Demand:
    """Take ``amount`` from the bucket ``bucket`` holding ``capacity`` per ``period`` seconds.

    (Plain, not frozen, slotted dataclasses here: they are built on every limited request and a
    frozen one costs three times as much to create.)
    """

    bucket: str
    capacity: int
    amount: float
    period: float = 60.0


@dataclass(slots=True)
class Admission:
    allowed: bool
    retry_after_s: float  # when refused: seconds until every demand would be met
    # One (remaining whole units, seconds until full again) per demand, after the decision.
    states: list[tuple[int, float]]


class RateLimitStore(Protocol):
    """Token buckets that refill continuously; all demands of one call are met or none."""

    async def acquire(self, demands: Sequence[Demand], now: float) -> Admission:
        """Take every demand, or nothing and say how long until they would all fit.

        A demand larger than its bucket's capacity is admitted when the bucket is full (the
        bucket then goes negative): a single oversized request overshoots by itself at most.
        """

    async def adjust(self, changes: Sequence[tuple[Demand, float]], now: float) -> None:
        """Give back (a delta > 0) or take more (< 0) once the real cost is known: every
        ``(demand's bucket, delta)`` of one request in one call."""


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A finished response as it is replayed: status, content type, exact body bytes."""

    status: int
    content_type: bytes
    body: bytes


@dataclass(frozen=True, slots=True)
class Claim:
    """What ``IdempotencyStore.claim`` found for a key.

    ``state`` is ``new`` (the caller owns the key now and must ``complete`` or ``release``
    it), ``replay`` (``response`` is set), ``conflict`` (another body used this key),
    ``in_progress`` (still running elsewhere) or ``unreplayable`` (completed, too large to
    have been kept).
    """

    state: str
    response: StoredResponse | None = None


class IdempotencyStore(Protocol):
    async def claim(self, scope: str, fingerprint: str, now: float) -> Claim:
        """Take the key for a new request, or report why not."""

    async def wait(self, scope: str) -> None:
        """Return when the key's in-progress request ends (callers bound it with a timeout)."""

    async def complete(self, scope: str, response: StoredResponse | None, now: float) -> None:
        """Store the outcome (``None``: completed but too large to keep) for the window."""

    async def release(self, scope: str) -> None:
        """Forget an in-progress key (a retryable failure): a retry really runs again."""


@dataclass(slots=True)
class Artifact:
    """One stored file's record: an upload or a generated output. Times are Unix seconds."""

    artifact_id: str
    owner: str  # the API key's name
    kind: str  # "upload" | "output"
    filename: str
    content_type: str
    bytes: int
    sha256: str
    created_at: int
    expires_at: int
    duration_seconds: float | None = None
    task_id: str | None = None  # the task that produced an output


class ArtifactIndex(Protocol):
    """Artifact records; the bytes live in ``gateway.artifacts.files.ArtifactFiles``."""

    async def put(self, artifact: Artifact) -> None: ...

    async def get(self, artifact_id: str) -> Artifact | None: ...

    async def delete(self, artifact_id: str) -> None: ...

    async def expired(self, now: int, limit: int) -> list[Artifact]:
        """Up to ``limit`` records whose ``expires_at`` has passed."""


TERMINAL_TASK_STATES = frozenset({"succeeded", "failed", "canceled"})


@dataclass(slots=True)
class Task:
    """One async task's record: the public fields plus what the runner needs to drive it."""

    task_id: str  # time-ordered: a later task has a larger id
    owner: str
    type: str  # one of gateway.contract.schemas_music.TASK_TYPES
    status: str  # queued | running | succeeded | failed | canceled
    model: str
    created_at: int
    updated_at: int
    params: dict[str, Any]  # the validated request, as the runner rebuilds it
    request_id: str
    progress: float | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    provider: str | None = None
    job: dict[str, Any] | None = None  # the provider's job handle once submitted
    finished_at: int | None = None


@dataclass(frozen=True, slots=True)
class TaskPage:
    tasks: list[Task]
    next_cursor: str | None


class TaskStore(Protocol):
    """Task records, listed per owner newest first; changes are conditional on the status."""

    async def create(self, task: Task) -> None: ...

    async def get(self, task_id: str) -> Task | None: ...

    async def update(
        self, task_id: str, expect: frozenset[str], changes: dict[str, Any]
    ) -> Task | None:
        """Apply ``changes`` only if the task's status is in ``expect``; the new record or None.

        This is what makes cancel final: the runner's later writes expect a running task, so a
        result that arrives after a cancel is not recorded.
        """

    async def page(
        self,
        owner: str,
        *,
        status: str | None,
        type: str | None,
        after: str | None,
        limit: int,
    ) -> TaskPage:
        """The owner's tasks, newest first, starting after the task id ``after``."""

    async def unfinished(self) -> list[Task]:
        """Every task still queued or running (for shutdown and for picking work up)."""

    async def prune(self, finished_before: int) -> int:
        """Forget finished tasks older than ``finished_before``; how many went."""

    async def acquire_lease(self, task_id: str, holder: str, ttl_s: float) -> bool:
        """Become the one replica driving the task, unless another holds a live lease."""

    async def renew_lease(self, task_id: str, holder: str, ttl_s: float) -> bool:
        """Extend the lease; False when it was lost (expired and taken by another)."""

    async def release_lease(self, task_id: str, holder: str) -> None:
        """Give the task up so another replica may drive it."""


@dataclass(frozen=True, slots=True)
class SavedResponse:
    """A stored ``POST /v1/responses`` answer: ``items`` is the conversation it answered (the
    earlier turns and the request's own input items), ``response`` the Response object."""

    response_id: str
    owner: str  # the key's name: only it may read, continue or delete the response
    items: list[dict[str, Any]]
    response: dict[str, Any]


class ResponseStore(Protocol):
    """Stored responses, each kept for the configured retention from when it was stored."""

    async def put(self, saved: SavedResponse) -> None: ...

    async def get(self, response_id: str) -> SavedResponse | None: ...

    async def delete(self, response_id: str) -> bool:
        """Forget the response; False when there was none."""


class StateUnavailable(DependencyUnavailable):
    """The shared state store could not be reached in time (the gateway answers 503)."""
