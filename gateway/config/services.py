"""Settings of the services around the request path: shared state, artifact storage, tasks.

Their TOML sections are ``[state]``, ``[storage]`` and ``[tasks]``; each parser here reads one
section strictly, like the rest of ``gateway.config.settings``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.config.reader import ConfigError, Table, env_secret


@dataclass(frozen=True, slots=True)
class StateSettings:
    """Where shared state lives: this process's memory, or a Redis that replicas share."""

    backend: str = "memory"  # "memory" | "redis"
    redis_url: str | None = None  # read from the environment variable ``redis_url_env`` names
    key_prefix: str = "beatra:"
    timeout_s: float = 0.5  # a Redis call slower than this counts as Redis being down
    # Redis down: rate limits admit (fail open) or refuse with 503 (fail closed). Idempotent
    # creates and tasks always fail closed: they must never run twice.
    rate_limits_fail_open: bool = True
    task_lease_s: float = 15.0  # a replica that stops renewing its lease loses its tasks


@dataclass(frozen=True, slots=True)
class StorageSettings:
    """Where artifacts (uploads and generated audio) live, and for how long."""

    # A directory on local disk (relative paths are relative to the working directory); replicas
    # share it as a volume. Files are written to a temporary name and renamed when complete.
    path: str = "data/artifacts"
    max_upload_bytes: int = 100 * 1024 * 1024
    upload_retention_s: float = 86400.0
    output_retention_s: float = 7 * 86400.0
    sweep_interval_s: float = 300.0


@dataclass(frozen=True, slots=True)
class TaskSettings:
    """How the task runner drives provider jobs."""

    poll_initial_s: float = 1.0  # first wait between polls; doubles (with jitter) up to poll_max_s
    poll_max_s: float = 15.0
    deadline_s: float = 1800.0  # a job still unfinished after this is canceled and failed
    max_running: int = 64  # jobs driven at once; more wait in ``queued``
    task_retention_s: float = 7 * 86400.0  # finished task records are kept this long


def state_settings(table: Table, env: Mapping[str, str]) -> StateSettings:
    d = StateSettings()
    backend = table.text("backend", d.backend)
    if backend not in ("memory", "redis"):
        raise ConfigError(table.at("backend"), 'must be "memory" or "redis"')
    redis_url = env_secret(table, "redis_url_env", env)
    if backend == "redis" and redis_url is None:
        raise ConfigError(table.at("redis_url_env"), "is required with the redis backend")
    settings = StateSettings(
        backend=backend,
        redis_url=redis_url,
        key_prefix=table.text("key_prefix", d.key_prefix),
        timeout_s=table.number("timeout_s", d.timeout_s, 0.001),
        rate_limits_fail_open=table.flag("rate_limits_fail_open", d.rate_limits_fail_open),
        task_lease_s=table.number("task_lease_s", d.task_lease_s, 0.1),
    )
    table.done()
    return settings


def storage_settings(table: Table) -> StorageSettings:
    d = StorageSettings()
    settings = StorageSettings(
        path=table.text("path", d.path),
        max_upload_bytes=table.integer("max_upload_bytes", d.max_upload_bytes, 1),
        upload_retention_s=table.number("upload_retention_s", d.upload_retention_s, 1),
        output_retention_s=table.number("output_retention_s", d.output_retention_s, 1),
        sweep_interval_s=table.number("sweep_interval_s", d.sweep_interval_s, 0.01),
    )
    table.done()
    return settings


def task_settings(table: Table) -> TaskSettings:
    d = TaskSettings()
    settings = TaskSettings(
        poll_initial_s=table.number("poll_initial_s", d.poll_initial_s, 0.001),
        poll_max_s=table.number("poll_max_s", d.poll_max_s, 0.001),
        deadline_s=table.number("deadline_s", d.deadline_s, 0.01),
        max_running=table.integer("max_running", d.max_running, 1),
        task_retention_s=table.number("task_retention_s", d.task_retention_s, 1),
    )
    table.done()
    return settings
