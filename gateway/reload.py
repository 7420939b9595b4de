"""Configuration reload without a restart: on SIGHUP, re-read the file and swap in a new
``Generation`` of the request path.

What a reload changes: keys (added, rotated, disabled, removed), providers, models and their
deployments, routing and aliases, rate limits and the relay's retry policy; each takes effect
for requests that arrive after the swap. Requests and streams already dispatched finish on the
generation they started on. A provider whose settings did not change keeps its adapter and
connection pool; an adapter no longer used is closed once the last request of its generation
has ended.

What needs a restart (``RESTART_ONLY``: the listen address, the state backend, storage, task
runner, telemetry and the other process-wide sections) keeps its running value; a reload that
changes one says so in a ``config_restart_needed`` warning naming the sections.

An invalid file changes nothing: the running config stays, ``config_reload_rejected`` is logged
with the file and the dotted path of the mistake, and ``beatra_config_reloads_total{result=
"rejected"}`` counts it. ``beatra_config_info{sha256}`` names the file text that is live.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import structlog

from gateway.config.settings import ConfigError, Settings, default_config_text, parse_settings
from gateway.generation import (
    Adapter,
    Generation,
    Services,
    build_generation,
    retired_adapters,
    same_provider,
)
from gateway.http.router import Router

# The ``Settings`` fields a reload applies; every other field is RESTART_ONLY.
RELOADABLE = ("providers", "models", "auto", "aliases", "keys", "limits", "relay")
RESTART_ONLY = tuple(
    spec.name for spec in dataclasses.fields(Settings) if spec.name not in RELOADABLE
)

_log = structlog.get_logger("beatra.gateway")


@dataclass(frozen=True, slots=True)
class ConfigSource:
    """Where the configuration comes from: a file (None: the embedded default), the environment
    its ``*_env`` names resolve in, and a check the command line adds (a development key only
    on loopback)."""

    path: Path | None = None
    env: Mapping[str, str] | None = None
    check: Callable[[Settings], None] | None = None

    def load(self) -> tuple[Settings, str]:
        """The settings and the sha256 of the text they came from."""
        text = default_config_text() if self.path is None else self.path.read_text("utf-8")
        settings = parse_settings(text, self.env)
        if self.check is not None:
            self.check(settings)
        return settings, hashlib.sha256(text.encode()).hexdigest()

    @property
    def name(self) -> str:
        return "(embedded default)" if self.path is None else str(self.path)


class Host(Protocol):
    """What a reload needs of the application (``gateway.app.Gateway``)."""

    generation: Generation
    services: Services

    def install(self, generation: Generation) -> None: ...


def restart_needed(running: Settings, loaded: Settings) -> list[str]:
    """The restart-only sections the file changed (their running values stay)."""
    return [name for name in RESTART_ONLY if getattr(running, name) != getattr(loaded, name)]


def applied(running: Settings, loaded: Settings) -> Settings:
    """The running settings with the file's reloadable sections."""
    changes = {name: getattr(loaded, name) for name in RELOADABLE}
    return dataclasses.replace(running, **changes)


class Reloader:
    """Reloads ``host``'s configuration from ``source``, one reload at a time."""

    def __init__(self, host: Host, source: ConfigSource | None, sha256: str = "") -> None:
        self._host = host
        self._source = source
        self._lock = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()
        self._signals: set[asyncio.Task[bool]] = set()
        self._listening = False
        host.services.metrics.config_sha256 = sha256

    def listen(self) -> None:
        """Reload on SIGHUP (only in the main thread of a process started from a file)."""
        if self._source is None:
            return
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_signal)
        except (ValueError, RuntimeError, NotImplementedError):
            return  # not the main thread (an embedded server): reload() is still callable
        self._listening = True

    def _on_signal(self) -> None:
        task = asyncio.get_running_loop().create_task(self.reload())
        self._signals.add(task)
        task.add_done_callback(self._signals.discard)

    async def reload(self) -> bool:
        """Re-read the source; True if the new configuration is live."""
        if self._source is None:
            return False
        async with self._lock:
            return await self._reload(self._source)

    async def _reload(self, source: ConfigSource) -> bool:
        metrics = self._host.services.metrics
        try:
            loaded, sha256 = source.load()
        except (ConfigError, OSError, UnicodeDecodeError) as exc:
            self._reject(source, exc)
            return False
        running = self._host.generation
        restart = restart_needed(running.settings, loaded)
        if restart:
            _log.warning("config_restart_needed", file=source.name, sections=restart)
        try:
            generation = build_generation(
                applied(running.settings, loaded), self._host.services, running
            )
        except Exception as exc:  # an adapter refused its settings
            self._reject(source, exc)
            return False
        started: list[Adapter] = []
        try:
            for adapter in generation.fresh:
                await adapter.start()
                started.append(adapter)
        except Exception as exc:
            for adapter in started:
                await adapter.close()
            self._reject(source, exc)
            return False
        self._host.install(generation)
        metrics.config_reloads.labels("applied").inc()
        metrics.config_sha256 = sha256
        old = running.settings.providers
        _log.info(
            "config_reloaded",
            file=source.name,
            sha256=sha256,
            keys=len(loaded.keys),
            models=len(loaded.models),
            providers_changed=sorted(
                name
                for name, provider in loaded.providers.items()
                if name not in old or not same_provider(old[name], provider)
            ),
            providers_removed=sorted(set(old) - set(loaded.providers)),
        )
        retired = retired_adapters(running, generation)
        task = asyncio.get_running_loop().create_task(self._retire(running.router, retired))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        return True

    def _reject(self, source: ConfigSource, exc: Exception) -> None:
        self._host.services.metrics.config_reloads.labels("rejected").inc()
        _log.error(
            "config_reload_rejected",
            file=source.name,
            at=exc.path if isinstance(exc, ConfigError) else None,
            error=str(exc),
        )

    @staticmethod
    async def _retire(router: Router, adapters: list[Adapter]) -> None:
        """Close what only a replaced generation used, once its last request has ended."""
        try:
            await router.retire()
        finally:  # at shutdown too: cancelled, the adapters still close
            for adapter in adapters:
                await adapter.close()

    async def stop(self) -> None:
        """At shutdown: no more reloads; what retiring generations hold is closed now."""
        if self._listening:
            with contextlib.suppress(ValueError, RuntimeError):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._listening = False
        for task in (*self._signals, *self._retiring):
            task.cancel()
        await asyncio.gather(*self._signals, *self._retiring, return_exceptions=True)
