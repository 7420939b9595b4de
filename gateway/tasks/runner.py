"""The task runner: the one owner of background work, living in the application's lifespan.

It wires the parts and owns their lifetime: each launched task is driven by
``gateway.tasks.drive`` (submit with fallback in ``submit``, polling and downloads in ``poll``,
outcomes in ``outcomes``), replicas sharing a store coordinate through ``leases``, a client's
cancel goes through ``cancel``, and the periodic expiry sweep is ``sweep``. At most
``tasks.max_running`` jobs run at a provider at once.

On shutdown every unfinished task is marked ``failed`` with a retryable ``service_unavailable``
error that says it was interrupted: a paid job is never resubmitted automatically. With a shared
store a job still running at its provider is left to another replica to poll instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Mapping

from gateway.artifacts.files import Artifacts
from gateway.config.settings import TaskSettings
from gateway.contract.errors import GatewayError
from gateway.metrics import Metrics
from gateway.stores.base import Task, TaskStore
from gateway.tasks.active import ActiveTask, Drives
from gateway.tasks.cancel import record_canceled
from gateway.tasks.drive import Driver
from gateway.tasks.image_jobs import ImageJobs
from gateway.tasks.leases import Leases
from gateway.tasks.outcomes import Outcomes
from gateway.tasks.poll import Poller
from gateway.tasks.submit import Submitter
from gateway.tasks.sweep import sweep_forever
from providers.images.base import ImagesAdapter
from providers.music.base import MusicAdapter


class TaskRunner:
    def __init__(
        self,
        store: TaskStore,
        artifacts: Artifacts,
        adapters: Mapping[str, MusicAdapter],
        settings: TaskSettings,
        metrics: Metrics,
        *,
        clock: Callable[[], float],
        rng: random.Random,
        shared: bool = False,
        lease_s: float = 15.0,
        image_adapters: Mapping[str, ImagesAdapter] | None = None,
    ) -> None:
        self._store = store
        self._artifacts = artifacts
        self._metrics = metrics
        self._drives = Drives()  # the tasks this replica drives
        self._outcomes = Outcomes(store, artifacts, metrics)
        # Replicas share the store: leases say who drives a task, and a task whose driver died
        # is taken over (by polling its recorded job, never by submitting it again).
        self._leases = Leases(store, shared=shared, lease_s=lease_s)
        self._driver = Driver(
            self._drives,
            self._leases,
            submitter=Submitter(
                store,
                artifacts,
                adapters,
                ImageJobs(artifacts, {} if image_adapters is None else image_adapters),
            ),
            poller=Poller(
                store, artifacts, settings, metrics, self._outcomes, clock=clock, rng=rng
            ),
            outcomes=self._outcomes,
            metrics=metrics,
            max_running=settings.max_running,
        )
        self._group: asyncio.TaskGroup | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._recovery: asyncio.Task[None] | None = None
        self._exit = contextlib.AsyncExitStack()

    async def start(self, sweep_interval_s: float, task_retention_s: float) -> None:
        self._group = await self._exit.enter_async_context(asyncio.TaskGroup())
        self._sweeper = self._group.create_task(
            sweep_forever(self._artifacts, self._store, sweep_interval_s, task_retention_s)
        )
        if self._leases.shared:
            self._recovery = self._group.create_task(
                self._leases.recover_forever(self._drives, self.launch)
            )

    async def stop(self) -> None:
        """Interrupt every task still running (recorded as such), then close the group."""
        self._drives.draining = True
        for active in list(self._drives.active.values()):
            active.stop()
        for background in (self._sweeper, self._recovery):
            if background is not None:
                background.cancel()
        await self._exit.aclose()
        self._group = None
        if not self._leases.shared:
            # Tasks still waiting for a slot were never submitted, but nothing will run them.
            for task in await self._store.unfinished():
                await self._outcomes.interrupt(task.task_id)

    def launch(self, task: Task) -> None:
        if self._group is None or self._drives.draining:
            raise GatewayError("service_unavailable", "The gateway is shutting down.")
        active = self._drives.active[task.task_id] = ActiveTask()
        active.drive = self._group.create_task(self._driver.drive(task, active))

    async def cancel(self, task: Task) -> Task:
        """Make ``task`` canceled now; stop its job here and at the provider."""
        updated = await record_canceled(self._store, self._artifacts, self._metrics, task)
        active = self._drives.active.get(task.task_id)
        if active is not None:
            active.stop()
        return updated
