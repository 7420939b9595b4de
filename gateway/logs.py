"""Structured logging: one JSON object per line (orjson), or readable console lines in
development. Callers pass chosen fields only; nothing logs headers, keys or message text."""

from __future__ import annotations

import logging
import sys
from typing import IO

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


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    renderer: structlog.typing.Processor
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=False)
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
