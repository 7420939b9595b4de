"""The tasks this replica drives right now: each one's job, adapter and coroutine, and whether
the replica is shutting down.

One ``Drives`` is shared by the runner and the parts it wires (drive, recovery, cancel), so a
shutdown or a cancel is seen by all of them at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from providers.music.base import MusicAdapter, MusicJob


class StopSignal(Exception):  # noqa: N818 - a signal, not an error
    """The task ended without a result of ours to record (canceled elsewhere, or lost)."""


@dataclass(slots=True)
class ActiveTask:
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


@dataclass(slots=True)
class Drives:
    active: dict[str, ActiveTask] = field(default_factory=dict)  # by task id
    draining: bool = False  # shutting down: nothing new starts, provider cancels are brief
