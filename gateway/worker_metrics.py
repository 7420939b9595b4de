"""``GET /metrics`` under ``--workers N``: every worker's series in every scrape.

Each worker keeps its own registry, and a scrape of the shared port reaches one worker at
random; alone, that worker's numbers would make dashboards jump between workers. So each worker
also answers on a Unix socket of its own in the supervisor's directory (it writes its own
exposition and closes), and the worker that gets the scrape reads its siblings' there and
answers with the union, every sample labelled ``worker="<slot>"``; Prometheus sums across
workers as it sums across replicas. A sibling that does not answer within ``_PEER_TIMEOUT_S``
(it is being replaced) is left out of that scrape. The cost is paid per scrape, never per request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from gateway.metrics import Metrics

_PEER_TIMEOUT_S = 1.0


@dataclass(frozen=True, slots=True)
class WorkerSlot:
    """Which of the supervisor's workers this process is, and where the workers meet."""

    slot: int
    count: int
    directory: Path

    def socket_path(self, slot: int) -> Path:
        return self.directory / f"worker-{slot}.sock"


class _Union(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


def union(expositions: dict[int, str]) -> bytes:
    """The families of every worker's exposition as one, each sample labelled by worker."""
    merged: dict[str, Metric] = {}
    for slot, text in sorted(expositions.items()):
        for family in text_string_to_metric_families(text):
            into = merged.get(family.name)
            if into is None:
                into = merged[family.name] = Metric(family.name, family.documentation, family.type)
            for sample in family.samples:
                labels = {**sample.labels, "worker": str(slot)}
                into.samples.append(Sample(sample.name, labels, sample.value, sample.timestamp))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Union(merged.values()))
    return generate_latest(registry)


class WorkerMetrics:
    """Serves this worker's exposition to its siblings and gathers theirs for a scrape."""

    def __init__(self, worker: WorkerSlot, metrics: Metrics) -> None:
        self._worker = worker
        self._metrics = metrics
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        path = self._worker.socket_path(self._worker.slot)
        path.unlink(missing_ok=True)  # left by the worker this one replaces
        self._server = await asyncio.start_unix_server(self._answer, path=str(path))

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(self._metrics.render())
            await writer.drain()
        finally:
            writer.close()

    async def _read(self, slot: int) -> str | None:
        try:
            async with asyncio.timeout(_PEER_TIMEOUT_S):
                reader, writer = await asyncio.open_unix_connection(
                    str(self._worker.socket_path(slot))
                )
                try:
                    return (await reader.read()).decode()
                finally:
                    writer.close()
        except (OSError, TimeoutError):
            return None  # not there (being replaced): left out of this scrape

    async def render(self) -> bytes:
        others = [slot for slot in range(self._worker.count) if slot != self._worker.slot]
        texts = await asyncio.gather(*(self._read(slot) for slot in others))
        expositions = {slot: text for slot, text in zip(others, texts, strict=True) if text}
        expositions[self._worker.slot] = self._metrics.render().decode()
        return union(expositions)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._worker.socket_path(self._worker.slot).unlink(missing_ok=True)
