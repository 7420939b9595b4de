"""Settings of the services around the request path: shared state, artifact storage, tasks,
traces.

Their TOML sections are ``[state]``, ``[storage]``, ``[tasks]`` and ``[telemetry]``, each
read by the data-driven reader of ``gateway.config.schema`` from the fields below (with their
minimums).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.config.reader import ConfigError, Table
from gateway.config.schema import at_least, from_env, read_section


@dataclass(frozen=True, slots=True)
class StateSettings:
    """Where shared state lives: this process's memory, or a Redis that replicas share."""

    backend: str = "memory"  # "memory" | "redis"
    redis_url: str | None = from_env("redis_url_env")  # the variable that key names holds it
    key_prefix: str = "beatra:"
    timeout_s: float = at_least(0.001, 0.5)  # a Redis call slower than this counts as down
    # Redis down: rate limits admit (fail open) or refuse with 503 (fail closed). Idempotent
    # creates and tasks always fail closed: they must never run twice.
    rate_limits_fail_open: bool = True
    task_lease_s: float = at_least(0.1, 15.0)  # a replica that stops renewing loses its tasks


@dataclass(frozen=True, slots=True)
class StorageSettings:
    """Where artifacts (uploads and generated audio) live, and for how long."""

    # A directory on local disk (relative paths are relative to the working directory); replicas
    # share it as a volume. Files are written to a temporary name and renamed when complete.
    path: str = "data/artifacts"
    max_upload_bytes: int = at_least(1, 100 * 1024 * 1024)
    upload_retention_s: float = at_least(1, 86400.0)
    output_retention_s: float = at_least(1, 7 * 86400.0)
    sweep_interval_s: float = at_least(0.01, 300.0)


@dataclass(frozen=True, slots=True)
class TaskSettings:
    """How the task runner drives provider jobs."""

    # The first wait between polls; doubles (with jitter) up to poll_max_s.
    poll_initial_s: float = at_least(0.001, 1.0)
    poll_max_s: float = at_least(0.001, 15.0)
    deadline_s: float = at_least(0.01, 1800.0)  # a job unfinished after this is canceled, failed
    max_running: int = at_least(1, 64)  # jobs driven at once; more wait in ``queued``
    task_retention_s: float = at_least(1, 7 * 86400.0)  # finished task records are kept this long


DEFAULT_SERVICE_NAME = "beatra-gateway"


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    """OpenTelemetry traces, opt-in: on when an OTLP endpoint is named (here, or in the standard
    ``OTEL_EXPORTER_OTLP_ENDPOINT``), exported over OTLP/HTTP to ``<endpoint>/v1/traces``."""

    otlp_endpoint: str | None = None
    service_name: str = DEFAULT_SERVICE_NAME  # or OTEL_SERVICE_NAME
    sample_ratio: float = at_least(0, 1.0)  # of the traces this gateway starts (parents decide)


def telemetry_settings(table: Table, env: Mapping[str, str]) -> TelemetrySettings:
    settings = read_section(TelemetrySettings, table, env)
    if settings.sample_ratio > 1:
        raise ConfigError(table.at("sample_ratio"), "must be between 0 and 1")
    endpoint = settings.otlp_endpoint or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise ConfigError(table.at("otlp_endpoint"), "must be an http:// or https:// URL")
    service = settings.service_name
    if service == DEFAULT_SERVICE_NAME:  # not set in the file: the environment may
        service = env.get("OTEL_SERVICE_NAME") or service
    return TelemetrySettings(
        endpoint.rstrip("/") if endpoint else None, service, settings.sample_ratio
    )


def state_settings(table: Table, env: Mapping[str, str]) -> StateSettings:
    settings = read_section(StateSettings, table, env)
    if settings.backend not in ("memory", "redis"):
        raise ConfigError(table.at("backend"), 'must be "memory" or "redis"')
    if settings.backend == "redis" and settings.redis_url is None:
        raise ConfigError(table.at("redis_url_env"), "is required with the redis backend")
    return settings


def storage_settings(table: Table) -> StorageSettings:
    return read_section(StorageSettings, table)


def task_settings(table: Table) -> TaskSettings:
    return read_section(TaskSettings, table)
