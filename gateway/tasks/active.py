"""What the runner knows of a task it drives, and the signal that ends a drive quietly."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from providers.music.base import MusicAdapter, MusicJob

UNFINISHED = frozenset({"queued", "running"})
RUNNING = frozenset({"running"})


class StopSignal(Exception):  # noqa: N818 - a signal, not an error
    """The task ended without a result of ours to record (canceled elsewhere, or lost)."""


@dataclass(slots=True)
class Active:
    adapter: MusicAdapter | None = None
    job: MusicJob | None = None
    settled_at_provider: bool = False  # the provider reported a terminal state
    lease_lost: bool = False  # another replica drives the task now
    drive: asyncio.Task[None] | None = None  # the coroutine driving the task here

    def stop(self) -> None:
        if self.drive is not None:
            self.drive.cancel()

    @property
    def pollable(self) -> bool:
        """A job at the provider that another replica could go on polling."""
        return self.job is not None and self.job.done is None and not self.settled_at_provider
