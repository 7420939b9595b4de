"""Structured logging: one JSON object per line (orjson), or readable console lines in
development. Callers pass chosen fields only; nothing logs headers, keys or message text."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from typing import IO, Any

import orjson
import structlog

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class LogSink:
    """Where log lines go; the target can be swapped (tests capture it) even after loggers
    have been cached by structlog."""

    def __init__(self) -> None:
        self.target: IO[bytes] = sys.stdout.buffer

    def write(self, data: bytes) -> int:
        return self.target.write(data)

    def flush(self) -> None:
        self.target.flush()


SINK = LogSink()


class _AccessLog:
    """The per-request line, written straight to the sink as one orjson-encoded object.

    It is the one log line every request pays for, so it skips structlog's processor chain
    (measured at about ten times the cost); other events go through structlog as usual.
    """

    def __init__(self) -> None:
        self.enabled = True
        self.json = True
        self._second = -1
        self._stamp = ""

    def timestamp(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((now - second) * 1_000_000):06d}Z"


_ACCESS = _AccessLog()
_access_fallback = structlog.get_logger("beatra.gateway")


def log_access(fields: dict[str, Any]) -> None:
    """Write one access-log line (``"event": "request"``) with the given fields."""
    if not _ACCESS.enabled:
        return
    if not _ACCESS.json:
        _access_fallback.info("request", **fields)
        return
    fields["event"] = "request"
    fields["level"] = "info"
    fields["timestamp"] = _ACCESS.timestamp(time.time())
    SINK.write(orjson.dumps(fields) + b"\n")


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    _ACCESS.enabled = LEVELS[level] <= logging.INFO
    _ACCESS.json = fmt == "json"
    renderer: structlog.typing.Processor
    if fmt == "console":
        # Plain tracebacks: a rich one would print frame locals (request bodies, prompts).
        renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
        factory: object = structlog.PrintLoggerFactory(sys.stdout)
    else:
        renderer = structlog.processors.JSONRenderer(serializer=orjson.dumps)
        factory = structlog.BytesLoggerFactory(SINK)  # type: ignore[arg-type]
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=factory,  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )


class ServerRecords(logging.Handler):
    """uvicorn's own log records as structured events, so that every line the process writes
    is one of the gateway's log lines (JSON in production), never plain text.

    A request task that uvicorn cancels because it outlasted the shutdown grace is expected,
    not a fault: uvicorn logs each one as "Exception in ASGI application" with a traceback.
    Those are dropped here, and uvicorn's one "Cancel N running task(s)" line becomes one
    ``shutdown_cancelled_requests`` event with the count.
    """

    _CANCELLED = re.compile(r"Cancel (\d+) running task")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            exc = record.exc_info[1] if record.exc_info else None
            if isinstance(exc, asyncio.CancelledError):
                return
            message = record.getMessage().strip()
            logger = structlog.get_logger("uvicorn")
            cancelled = self._CANCELLED.match(message)
            if cancelled is not None:
                logger.warning("shutdown_cancelled_requests", count=int(cancelled.group(1)))
                return
            fields: dict[str, Any] = {"logger": record.name, "message": message}
            if exc is not None:
                fields["exc_info"] = record.exc_info
            logger.log(record.levelno, "server", **fields)
        except Exception:  # a handler must never raise into the code that logged
            self.handleError(record)


def server_log_config() -> dict[str, Any]:
    """The ``logging.config.dictConfig`` for uvicorn's loggers: all through ``ServerRecords``."""
    handler = {"server": {"()": f"{__name__}.ServerRecords"}}
    route = {"handlers": ["server"], "level": "INFO", "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": handler,
        "loggers": {"uvicorn": route, "uvicorn.access": route},
    }
