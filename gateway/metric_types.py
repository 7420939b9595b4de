"""Counters, gauges and histograms that cost the request path a few bytecodes per update.

prometheus-client's metric objects take a lock and validate on every update (some 100 bytecodes
for an ``inc``, more for an ``observe``), which suits threaded servers; the gateway updates its
metrics from one event loop, so a child here is a slotted object with plain fields, and the
work moves to scrape time: ``collect`` builds prometheus-client's metric families from the
fields, and prometheus-client still renders the text format (the same samples and names,
``_created`` series included, as its own classes write).

A labelled metric hands out one child per tuple of label values, cached, as prometheus-client's
``labels`` does; label values must come from bounded sets (see ``gateway.metrics``).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample


def _go_float(bound: float) -> str:
    """A bucket bound as Prometheus clients write ``le`` (``1.0``, ``0.005``, ``2.5``)."""
    return repr(float(bound))


class CounterChild:
    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        self.value += amount


class Gauge:
    """An unlabelled gauge."""

    __slots__ = ("documentation", "name", "value")

    def __init__(self, name: str, documentation: str, *, registry: MetricSet) -> None:
        self.name = name
        self.documentation = documentation
        self.value = 0.0
        registry.add(self)

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = value

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(self.name, self.documentation, value=self.value)


class HistogramChild:
    __slots__ = ("bounds", "counts", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.created = time.time()

    def observe(self, value: float) -> None:
        # The first bucket whose upper bound is >= the value, as Prometheus' "le" means.
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value


class _Family:
    """A labelled metric: its children by label values."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], *, registry: MetricSet
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = list(labelnames)
        registry.add(self)

    def _check(self, values: tuple[str, ...]) -> None:
        if len(values) != len(self.labelnames) or not all(isinstance(v, str) for v in values):
            raise ValueError(f"{self.name} takes {len(self.labelnames)} string label values")

    def collect(self) -> Iterator[Metric]:
        raise NotImplementedError


class Counter(_Family):
    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], *, registry: MetricSet
    ) -> None:
        super().__init__(name, documentation, labelnames, registry=registry)
        self._children: dict[tuple[str, ...], CounterChild] = {}

    def labels(self, *values: str) -> CounterChild:
        child = self._children.get(values)
        if child is None:
            self._check(values)
            child = self._children[values] = CounterChild()
        return child

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._children.items()):
            family.add_metric(list(values), child.value, created=child.created)
        yield family


class Histogram(_Family):
    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        *,
        buckets: Sequence[float],
        registry: MetricSet,
    ) -> None:
        super().__init__(name, documentation, labelnames, registry=registry)
        self._bounds = tuple(float(bound) for bound in buckets)
        self._labels = [_go_float(bound) for bound in self._bounds] + ["+Inf"]
        self._histograms: dict[tuple[str, ...], HistogramChild] = {}

    def labels(self, *values: str) -> HistogramChild:
        child = self._histograms.get(values)
        if child is None:
            self._check(values)
            child = self._histograms[values] = HistogramChild(self._bounds)
        return child

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._histograms.items()):
            cumulative, buckets = 0, []
            for label, count in zip(self._labels, list(child.counts), strict=True):
                cumulative += count
                buckets.append((label, float(cumulative)))
            family.add_metric(list(values), buckets, child.sum)
            # The _created sample prometheus-client's own histograms carry (no argument for it).
            labels = dict(zip(self.labelnames, values, strict=True))
            family.samples.append(Sample(self.name + "_created", labels, child.created))
        yield family


class MetricSet(Collector):
    """Every metric of one registry, collected in declaration order."""

    def __init__(self) -> None:
        self._metrics: list[Gauge | _Family] = []

    def add(self, metric: Gauge | _Family) -> None:
        self._metrics.append(metric)

    def collect(self) -> Iterable[Metric]:
        for metric in self._metrics:
            yield from metric.collect()
