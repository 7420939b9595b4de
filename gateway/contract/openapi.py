"""``GET /openapi.json``: the machine-readable spec, generated from the route table.

Besides bodies and query parameters, it documents the headers every layer adds or reads, from
the same constants the code uses: ``X-Request-Id`` (every request and response), ``Allow``
(405), ``Retry-After`` (429, 503), ``Idempotency-Key`` and ``Idempotent-Replayed`` (create-style
POSTs: a POST with a request body), and ``Range`` with 206, 416, ``Content-Range`` and the file
headers (the routes that answer 206: only they can answer 416).
"""

from __future__ import annotations

from typing import Any

from gateway import __version__
from gateway.contract.errors import ERROR_CODES
from gateway.contract.schemas import ERROR_ENVELOPE
from gateway.http.middleware import REQUEST_ID_PATTERN
from gateway.http.router import Route
from gateway.policy.idempotency import KEY_PATTERN

PARTIAL_CONTENT = 206
RANGE_NOT_SATISFIABLE = ERROR_CODES["range_not_satisfiable"].status

_STRING = {"type": "string"}
_REQUEST_ID_HEADER = {
    "description": "The request id: the client's if well-formed, else a new `req_<ulid>`.",
    "required": True,
    "schema": {"type": "string", "pattern": f"^{REQUEST_ID_PATTERN}$"},
}
_ERROR_HEADERS: dict[int, dict[str, Any]] = {
    ERROR_CODES["method_not_allowed"].status: {
        "Allow": {
            "description": "The methods the route accepts.",
            "required": True,
            "schema": _STRING,
        }
    },
    ERROR_CODES["rate_limited"].status: {
        "Retry-After": {
            "description": "Seconds to wait before retrying.",
            "required": True,
            "schema": {"type": "integer", "minimum": 0},
        }
    },
    ERROR_CODES["service_unavailable"].status: {
        "Retry-After": {
            "description": "Seconds to wait before retrying.",
            "schema": {"type": "integer", "minimum": 0},
        }
    },
    RANGE_NOT_SATISFIABLE: {
        "Content-Range": {
            "description": "`bytes */<size>`: the size of the file.",
            "required": True,
            "schema": {"type": "string", "pattern": r"^bytes \*/\d+$"},
        }
    },
}
_CONTENT_RANGE = {
    "description": "`bytes <first>-<last>/<size>`: the slice sent.",
    "required": True,
    "schema": {"type": "string", "pattern": r"^bytes \d+-\d+/\d+$"},
}
_FILE_HEADERS = {
    "Accept-Ranges": {"required": True, "schema": {"type": "string", "enum": ["bytes"]}},
    "ETag": {
        "description": "The file's sha256, quoted.",
        "required": True,
        "schema": {"type": "string", "pattern": '^"[0-9a-f]{64}"$'},
    },
    "Content-Disposition": {
        "description": "`inline` with an ASCII name and the RFC 5987 UTF-8 name.",
        "required": True,
        "schema": _STRING,
    },
}


def _header_parameter(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": schema,
    }


def _path_parameters(route: Route) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in route.path.strip("/").split("/") if part.startswith("{")]
    parameters: list[dict[str, Any]] = [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names
    ]
    if route.rest:
        parameters[-1]["description"] = "May contain `/`, sent as is or as `%2F`."
    return parameters


def _creates(route: Route) -> bool:
    """A create-style POST (it has a body): ``Idempotency-Key`` applies."""
    return route.method == "POST" and route.request_schema is not None


def _serves_ranges(route: Route) -> bool:
    return PARTIAL_CONTENT in route.responses


def _parameters(route: Route) -> list[dict[str, Any]]:
    parameters = _path_parameters(route) + list(route.query)
    parameters.append(
        _header_parameter(
            "X-Request-Id",
            f"Your id for this request, echoed back if it matches `{REQUEST_ID_PATTERN}`; "
            "any other value is replaced by a new one, never refused.",
            _STRING,
        )
    )
    if _creates(route):
        parameters.append(
            _header_parameter(
                "Idempotency-Key",
                "Same key and body within the window: the stored answer is replayed.",
                {"type": "string", "pattern": f"^{KEY_PATTERN}$"},
            )
        )
    if _serves_ranges(route):
        parameters.append(
            _header_parameter(
                "Range",
                "One byte range (`bytes=a-b`, `bytes=a-`, `bytes=-n`); others get the whole file.",
                _STRING,
            )
        )
    return parameters


def _success(route: Route, status: int, content: dict[str, Any]) -> dict[str, Any]:
    headers: dict[str, Any] = {"X-Request-Id": _REQUEST_ID_HEADER}
    if _creates(route):
        headers["Idempotent-Replayed"] = {
            "description": "`true` when this is the stored answer to an earlier request.",
            "schema": {"type": "string", "enum": ["true"]},
        }
    if _serves_ranges(route):
        headers.update(_FILE_HEADERS)
    if status == PARTIAL_CONTENT:
        headers["Content-Range"] = _CONTENT_RANGE
    return {"description": "Success", "headers": headers, "content": content}


def _error(status: int) -> dict[str, Any]:
    return {
        "description": "Error envelope",
        "headers": {"X-Request-Id": _REQUEST_ID_HEADER, **_ERROR_HEADERS.get(status, {})},
        "content": {"application/json": {"schema": ERROR_ENVELOPE}},
    }


def _operation_id(route: Route) -> str:
    words = [p.strip("{}") for p in route.path.strip("/").split("/")]
    return "_".join([route.method.lower(), *words]).replace(".", "_")


def build_openapi(routes: list[Route]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    statuses = sorted({spec.status for spec in ERROR_CODES.values()})
    for route in routes:
        if not route.public:
            continue
        operation: dict[str, Any] = {
            "summary": route.summary,
            "tags": [route.tag],
            "operationId": _operation_id(route),
            "parameters": _parameters(route),
            "responses": {},
        }
        if route.auth:
            operation["security"] = [{"bearer": []}]
        if route.request_schema is not None:
            media: dict[str, Any] = {"schema": route.request_schema}
            if route.request_encoding is not None:
                media["encoding"] = route.request_encoding
            operation["requestBody"] = {"required": True, "content": {route.request_media: media}}
        for status, content in route.responses.items():
            operation["responses"][str(status)] = _success(route, status, content)
        for status in statuses:
            if status == RANGE_NOT_SATISFIABLE and not _serves_ranges(route):
                continue
            operation["responses"].setdefault(str(status), _error(status))
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "beatra gateway", "version": __version__},
        "servers": [{"url": "/"}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    }
