"""``GET /openapi.json``: the machine-readable spec, generated from the route table."""

from __future__ import annotations

from typing import Any

from gateway import __version__
from gateway.errors import ERROR_CODES
from gateway.router import Route
from gateway.schemas import ERROR_ENVELOPE


def _path_parameters(path: str) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in path.strip("/").split("/") if part.startswith("{")]
    return [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names
    ]


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
            "responses": {},
        }
        parameters = _path_parameters(route.path) + list(route.query)
        if parameters:
            operation["parameters"] = parameters
        if route.auth:
            operation["security"] = [{"bearer": []}]
        if route.request_schema is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {route.request_media: {"schema": route.request_schema}},
            }
        for status, content in route.responses.items():
            operation["responses"][str(status)] = {"description": "Success", "content": content}
        for status in statuses:
            operation["responses"].setdefault(
                str(status),
                {
                    "description": "Error envelope",
                    "content": {"application/json": {"schema": ERROR_ENVELOPE}},
                },
            )
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "beatra gateway", "version": __version__},
        "servers": [{"url": "/"}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    }
