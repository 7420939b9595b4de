"""The contract's error codes in one table, the exception that carries one, and the envelope.

Every non-2xx response of the gateway, from any layer, is rendered by ``error_response`` (a
failure after a stream's first byte by ``error_event``) from this table, so status,
``retryable`` and the OpenAI-style ``type`` can never disagree with each other. What a
provider's failure becomes for the client (``from_upstream``) is decided here too, beside the
table it maps into.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

from providers.base import UpstreamError


@dataclass(frozen=True, slots=True)
class ErrorCode:
    status: int
    retryable: bool
    type: str  # the OpenAI error family, so SDK exception classes map cleanly
    message: str  # the default, client-safe message


ERROR_CODES: dict[str, ErrorCode] = {
    "invalid_request": ErrorCode(400, False, "invalid_request_error", "The request is not valid."),
    "missing_api_key": ErrorCode(
        401, False, "authentication_error", "Missing or malformed Authorization header."
    ),
    "invalid_api_key": ErrorCode(
        401, False, "authentication_error", "API key not found, disabled, or revoked."
    ),
    "permission_denied": ErrorCode(
        403, False, "permission_error", "This API key is not allowed to use this resource."
    ),
    "not_found": ErrorCode(404, False, "not_found_error", "Not found."),
    "model_not_found": ErrorCode(404, False, "not_found_error", "The model does not exist."),
    "method_not_allowed": ErrorCode(
        405, False, "invalid_request_error", "Method not allowed on this route."
    ),
    "idempotency_conflict": ErrorCode(
        409, False, "invalid_request_error", "Idempotency-Key was reused with a different body."
    ),
    "idempotency_in_progress": ErrorCode(
        409, True, "invalid_request_error", "A request with this Idempotency-Key is in progress."
    ),
    "task_not_cancelable": ErrorCode(
        409, False, "invalid_request_error", "The task is already in a terminal state."
    ),
    "payload_too_large": ErrorCode(
        413, False, "invalid_request_error", "The request body is too large."
    ),
    "unsupported_media_type": ErrorCode(
        415, False, "invalid_request_error", "Unsupported Content-Type."
    ),
    # Not in the contract's table: the HTTP status a player's Range past the end must get.
    "range_not_satisfiable": ErrorCode(
        416, False, "invalid_request_error", "The requested range is not satisfiable."
    ),
    "rate_limited": ErrorCode(
        429, True, "rate_limit_error", "Request budget exhausted; retry later."
    ),
    "internal_error": ErrorCode(500, True, "api_error", "Internal error."),
    "upstream_error": ErrorCode(502, True, "api_error", "The upstream provider failed."),
    "model_unavailable": ErrorCode(
        503, True, "api_error", "Every deployment of the model is unavailable; retry or use auto."
    ),
    "service_unavailable": ErrorCode(
        503, True, "api_error", "The gateway is temporarily unavailable."
    ),
    "upstream_timeout": ErrorCode(504, True, "api_error", "The upstream provider timed out."),
}


class GatewayError(Exception):
    """Raised anywhere in the request path; rendered once, as the contract's envelope."""

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        details: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        spec = ERROR_CODES[code]
        super().__init__(message or spec.message)
        self.code = code
        self.spec = spec
        self.message = message or spec.message
        self.details = details
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return self.spec.status


class DependencyUnavailable(Exception):  # noqa: N818 - named for what the caller sees
    """Something the gateway needs (its shared state store) is unreachable. Not a
    ``GatewayError``: code that handles a client's mistakes must not handle this too. The
    router answers it with ``answer()``."""

    def answer(self) -> GatewayError:
        return GatewayError(
            "service_unavailable",
            "The gateway's shared state store is unreachable; retry shortly.",
            headers={"retry-after": "1"},
        )


# One 400 lists at most this many problems: a body of a million bad items must not get a
# thousand-times larger answer. Validators may stop looking once they have found one more.
MAX_LISTED_ISSUES = 20


def invalid(details: list[dict[str, str]], message: str | None = None) -> GatewayError:
    if message is None:
        first = details[0]
        message = f"{first['field']}: {first['issue']}"
        if len(details) > 1:
            message += f" (and {len(details) - 1} more)"
    if len(details) > MAX_LISTED_ISSUES:
        details = [
            *details[:MAX_LISTED_ISSUES],
            {"field": "body", "issue": "more problems not listed"},
        ]
    return GatewayError("invalid_request", message, details=details)


def envelope_object(error: GatewayError, request_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": error.code,
        "message": error.message,
        "type": error.spec.type,
        "retryable": error.spec.retryable,
        "request_id": request_id,
        "details": error.details or [],
        # OpenAI's error object always has ``param``: the offending field, when there is one.
        "param": error.details[0]["field"] if error.details else None,
    }
    return {"error": body}


def envelope(error: GatewayError, request_id: str) -> bytes:
    return orjson.dumps(envelope_object(error, request_id))


RawHeaders = list[tuple[bytes, bytes]]


def error_response(error: GatewayError, request_id: str) -> tuple[int, RawHeaders, bytes]:
    """The one rendering of an error as an HTTP answer: status, headers (the JSON content type
    and the error's own, e.g. ``Retry-After``) and the envelope."""
    headers = [(b"content-type", b"application/json")]
    headers += [(name.encode(), value.encode()) for name, value in error.headers.items()]
    return error.status, headers, envelope(error, request_id)


def error_event(error: GatewayError, request_id: str) -> bytes:
    """The envelope as the server-sent event that ends a stream which failed after its first
    byte (the status is already 200 by then)."""
    return b"data: " + envelope(error, request_id) + b"\n\n"


def from_upstream(error: UpstreamError) -> GatewayError:
    """The one mapping from an adapter's failure to what the client is told."""
    if error.kind == "client_error":
        return GatewayError(
            "invalid_request",
            f"The provider rejected the request: {error.message}",
            # The field the provider named (already checked to be a plain field path), if any.
            details=[{"field": error.param or "body", "issue": error.message}],
        )
    if error.kind == "rate_limited":
        wait = max(1, math.ceil(error.retry_after or 1))
        return GatewayError(
            "rate_limited",
            "Every deployment of the model is rate limited upstream; retry later.",
            headers={"retry-after": str(wait)},
        )
    if error.kind == "timeout":
        return GatewayError("upstream_timeout")
    return GatewayError("upstream_error")
