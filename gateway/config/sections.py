"""Settings of the request path itself: ``[server]``, ``[relay]``, ``[limits]``,
``[idempotency]`` and ``[responses]``, each read by the data-driven reader of
``gateway.config.schema`` from the fields below (with their minimums).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.config.reader import ConfigError, Table
from gateway.config.schema import at_least, from_env, read_section

LOG_FORMATS = ("json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = at_least(0, 8080)
    max_body_bytes: int = at_least(1024, 4 * 1024 * 1024)
    log_level: str = "info"
    log_format: str = "json"
    # When set, GET /metrics needs this bearer token.
    metrics_token: str | None = from_env("metrics_token_env")
    # On SIGTERM: how long in-flight requests and streams may finish.
    shutdown_grace_s: float = at_least(0, 30.0)
    header_timeout_s: float = at_least(0.01, 10.0)  # a request head must arrive within this
    body_timeout_s: float = at_least(0.01, 300.0)  # and its body within this (100 MB at 350 KB/s)


@dataclass(frozen=True, slots=True)
class RelaySettings:
    """How the relay retries, falls back and cools deployments down."""

    attempts_per_deployment: int = at_least(1, 2)
    backoff_base_s: float = at_least(0, 0.1)
    backoff_max_s: float = at_least(0, 2.0)
    # A longer upstream Retry-After falls back instead of waiting.
    max_retry_after_s: float = at_least(0, 5.0)
    cooldown_failures: int = at_least(1, 3)
    cooldown_s: float = at_least(0, 30.0)
    # One chat request's deadline across every attempt and fallback (a sync answer: until it is
    # whole; a stream: until its first event). As long as a provider's default total_timeout_s,
    # so one whole sync attempt always fits; each attempt is capped at what is left of it.
    request_timeout_s: float = at_least(0.001, 600.0)
    # A timed-out attempt may still be running (and billed) upstream: by default it is not
    # repeated on the same deployment (a fallback to the next one still happens).
    retry_on_timeout: bool = False


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """Gateway-wide load shedding and the default rate limits (0 means unlimited)."""

    max_concurrency: int = at_least(1, 1024)  # chat requests in flight before new ones get 503
    key_rpm: int = at_least(0, 0)
    key_tpm: int = at_least(0, 0)
    model_rpm: int = at_least(0, 0)
    model_tpm: int = at_least(0, 0)


@dataclass(frozen=True, slots=True)
class IdempotencySettings:
    window_s: float = at_least(1, 86400.0)
    # In-memory bounds sized for one process (about 5 KB of RSS per kept answer, measured);
    # a shared store keeps more for longer.
    max_entries: int = at_least(1, 10_000)
    max_response_bytes: int = at_least(0, 1024 * 1024)  # a larger answer is served, not kept
    max_total_bytes: int = at_least(0, 16 * 1024 * 1024)  # all kept answers together
    # How long a duplicate waits for the first before 409 in_progress.
    wait_s: float = at_least(0, 30.0)


@dataclass(frozen=True, slots=True)
class ResponsesSettings:
    """Stored responses of ``POST /v1/responses`` (``store``, ``previous_response_id``)."""

    # OpenAI keeps stored responses for 30 days; so does the gateway by default.
    retention_s: int = at_least(1, 30 * 86400)
    # The in-memory backend keeps at most this many (the oldest go first); Redis is bounded by
    # retention alone.
    max_stored: int = at_least(1, 10_000)


def server_settings(table: Table, env: Mapping[str, str]) -> ServerSettings:
    settings = read_section(ServerSettings, table, env)
    settings = dataclasses.replace(settings, log_level=settings.log_level.lower())
    if settings.log_format not in LOG_FORMATS:
        raise ConfigError(table.at("log_format"), 'must be "json" or "console"')
    if settings.log_level not in LOG_LEVELS:
        raise ConfigError(table.at("log_level"), "must be debug, info, warning or error")
    return settings


def relay_settings(table: Table) -> RelaySettings:
    return read_section(RelaySettings, table)


def limit_settings(table: Table) -> LimitSettings:
    return read_section(LimitSettings, table)


def idempotency_settings(table: Table) -> IdempotencySettings:
    return read_section(IdempotencySettings, table)


def responses_settings(table: Table) -> ResponsesSettings:
    return read_section(ResponsesSettings, table)
