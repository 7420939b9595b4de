"""uvicorn's own records come out as the gateway's structured log lines."""

from __future__ import annotations

import asyncio
import logging
import logging.config

from gateway.logs import server_log_config
from tests.conftest import CapturedLogs


def test_uvicorn_records_are_json_and_expected_cancellations_are_dropped(
    logs: CapturedLogs,
) -> None:
    logging.config.dictConfig(server_log_config())
    error_log = logging.getLogger("uvicorn.error")
    try:
        raise ValueError("boom")
    except ValueError:
        error_log.exception("Exception in ASGI application\n")
    try:
        raise asyncio.CancelledError("Task cancelled, timeout graceful shutdown exceeded")
    except asyncio.CancelledError:
        error_log.exception("Exception in ASGI application\n")
    error_log.error("Cancel 2 running task(s), timeout graceful shutdown exceeded")

    failure, cancelled = logs.lines()
    assert failure["event"] == "server" and failure["level"] == "error"
    assert failure["message"] == "Exception in ASGI application"
    assert "ValueError: boom" in failure["exception"]
    assert cancelled == cancelled | {"event": "shutdown_cancelled_requests", "count": 2}
