"""The contract between the gateway's task runner and music adapters.

A music adapter translates one provider-neutral ``MusicRequest`` into a provider's job and reads
the job's progress back as a ``MusicStatus``. The runner owns everything around it: when to poll
(backoff, Retry-After, deadline), cancellation, downloading outputs into artifacts and the task
record. Like chat adapters, music adapters see no client keys, limits or metrics, and every
failure leaves them as one ``UpstreamError``.

A provider with a synchronous API (audio bytes in the HTTP answer) finishes inside ``submit`` and
returns a job whose ``done`` is already set, so the runner skips polling: sync behind async.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from providers.base import UpstreamError

MusicState = Literal["queued", "running", "succeeded", "failed", "canceled"]
TERMINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed", "canceled"})

# How a reference recording shapes the result, where a provider supports it:
#   melody        keep the reference's melody, re-orchestrated after the prompt
#   continuation  continue the reference, which opens the result
#   remix         audio-to-audio: transform the reference after the prompt
REFERENCE_MODES = ("melody", "continuation", "remix")


@dataclass(frozen=True, slots=True)
class ReferenceAudio:
    """An uploaded recording the request refers to; the file stays on the gateway's disk."""

    path: Path
    content_type: str
    filename: str
    size: int
    mode: str  # one of REFERENCE_MODES
    strength: float | None = None  # remix: how far from the reference (0-1), provider default


@dataclass(frozen=True, slots=True)
class MusicRequest:
    """One generation as an adapter receives it (already validated against its capabilities)."""

    upstream_model: str
    request_id: str
    task_id: str
    prompt: str
    duration_seconds: float
    format: str  # one of the adapter's ``formats``
    lyrics: str | None = None
    instrumental: bool = False
    seed: int | None = None
    reference: ReferenceAudio | None = None


@dataclass(frozen=True, slots=True)
class MusicOutput:
    """One finished audio file: a URL to download (it may expire soon) or the bytes themselves."""

    content_type: str
    url: str | None = None
    data: bytes | None = None
    duration_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class MusicStatus:
    """A job as the provider reports it, mapped to the gateway's task states."""

    state: MusicState
    progress: float | None = None  # 0-1 where the provider says
    outputs: tuple[MusicOutput, ...] = ()  # set when ``state`` is succeeded
    error: UpstreamError | None = None  # set when ``state`` is failed
    retry_after: float | None = None  # the provider's hint for the next poll, in seconds


@dataclass(slots=True)
class MusicJob:
    """The provider's handle on a submitted job.

    ``job_id`` and ``data`` are kept in the task record (``data`` must be JSON-serialisable: ids
    and the URLs a provider returned for status, result and cancel), so a job can be polled or
    canceled from its record alone. ``done`` is only for a job that finished inside ``submit``.
    """

    job_id: str
    data: dict[str, Any] = field(default_factory=dict)
    done: MusicStatus | None = None


class MusicAdapter(Protocol):
    """What every music adapter offers; ``kind`` names it in the configuration."""

    kind: str
    formats: frozenset[str]  # output formats it can produce, e.g. {"wav", "mp3"}
    reference_modes: frozenset[str]  # subset of REFERENCE_MODES; empty: no reference audio
    max_duration_seconds: float

    async def start(self) -> None:
        """Open pooled connections; called once by the gateway's lifespan."""

    async def close(self) -> None:
        """Release everything ``start`` opened."""

    async def submit(self, request: MusicRequest) -> MusicJob:
        """Create the job at the provider (upload the reference first where it needs that)."""

    async def poll(self, job: MusicJob) -> MusicStatus:
        """Ask the provider how the job stands."""

    async def cancel(self, job: MusicJob) -> None:
        """Ask the provider to stop the job; a no-op where it has no cancel call."""

    def download(self, output: MusicOutput) -> AsyncIterator[bytes]:
        """The output's bytes in chunks (from ``output.data`` or by fetching ``output.url``)."""
