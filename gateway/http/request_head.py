"""The limits of a request's head, the headers it may carry only once, and the answer to a head
refused while it is parsed (``gateway/http/server_protocol.py`` enforces them as the bytes arrive).

Refused heads get the error envelope (``invalid_request``) as raw HTTP/1.1 bytes with
``Connection: close``: the rest of such a head is never read, so the connection cannot go on.
"""

from __future__ import annotations

import re
from http import HTTPStatus

from gateway.contract.errors import GatewayError, error_response, invalid
from gateway.http.middleware import REQUEST_ID_PATTERN, new_request_id

# Common proxy limits (nginx, Apache) in one place: generous for any SDK, far below abuse.
MAX_HEADER_FIELDS = 100
MAX_HEADER_BYTES = 32 * 1024  # names and values of all fields together
# The raw head as it arrives (request line, header lines, whitespace): a bound for the field
# that is still arriving, which the parser only hands over once complete. Room for the longest
# URL the parser accepts (64 KiB) and every field within the limits above.
MAX_HEAD_BYTES = 128 * 1024

# Headers whose second copy would silently replace or contradict the first (the app reads the
# last one): each has a bit, so a request's copies are tracked in one int, with no allocation.
SINGLE_VALUE_HEADERS: dict[bytes, int] = {
    b"authorization": 1,
    b"content-length": 2,
    b"content-type": 4,
    b"idempotency-key": 8,
    b"x-request-id": 16,
}
_DISPLAY_NAMES = {
    b"authorization": "Authorization",
    b"content-length": "Content-Length",
    b"content-type": "Content-Type",
    b"idempotency-key": "Idempotency-Key",
    b"x-request-id": "X-Request-Id",
}
_CLIENT_ID = re.compile(REQUEST_ID_PATTERN.encode())
_TOO_LARGE = "The request headers are too large."


def too_many_fields() -> GatewayError:
    issue = f"more than {MAX_HEADER_FIELDS} header fields"
    return invalid([{"field": "headers", "issue": issue}], _TOO_LARGE)


def too_many_bytes() -> GatewayError:
    issue = f"header fields over {MAX_HEADER_BYTES} bytes in all"
    return invalid([{"field": "headers", "issue": issue}], _TOO_LARGE)


def head_too_long() -> GatewayError:
    issue = f"request head over {MAX_HEAD_BYTES} bytes"
    return invalid([{"field": "headers", "issue": issue}], _TOO_LARGE)


def repeated(name: bytes) -> GatewayError:
    """A single-value header (lower-case ``name``) that came more than once."""
    return invalid([{"field": _DISPLAY_NAMES[name], "issue": "sent more than once"}])


def refusal(
    error: GatewayError,
    headers: list[tuple[bytes, bytes]],
    default_headers: list[tuple[bytes, bytes]],
) -> bytes:
    """The whole HTTP/1.1 answer to a refused head: the envelope, ``X-Request-Id`` (the
    client's, when the fields parsed so far carry one well-formed copy) and ``Connection:
    close``; ``default_headers`` are the server's own (``Date``)."""
    request_id = _client_id(headers) or new_request_id()
    status, own_headers, body = error_response(error, request_id)
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, HTTPStatus(status).phrase.encode())]
    lines += [name + b": " + value + b"\r\n" for name, value in [*default_headers, *own_headers]]
    lines.append(
        b"content-length: %d\r\nx-request-id: %s\r\nconnection: close\r\n\r\n"
        % (len(body), request_id.encode())
    )
    lines.append(body)
    return b"".join(lines)


def _client_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    offered = [value for name, value in headers if name == b"x-request-id"]
    if len(offered) == 1 and _CLIENT_ID.fullmatch(offered[0]):
        return offered[0].decode()
    return None
