"""``GET /v1/health``, ``GET /metrics``, ``GET /openapi.json``, ``GET /openapi.yaml`` and
``GET /llms.txt``: what operators and tools read.

Health and the documents are rendered once (the OpenAPI document, as JSON and as YAML, and the
llms.txt map, from the route table handed over by ``publish`` once it exists); ``/metrics``
may require the metrics token, and under ``--workers N`` answers with every worker's series
(``gateway.worker_metrics``).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson

from gateway import __version__
from gateway.contract.errors import GatewayError
from gateway.contract.llms import build_llms_txt
from gateway.contract.openapi import build_openapi
from gateway.http.asgi import Request
from gateway.http.router import Route
from gateway.metrics import Metrics
from gateway.policy.auth import bearer_token
from gateway.worker_metrics import WorkerMetrics

YAML_HEADERS = [(b"content-type", b"application/yaml")]
TEXT_HEADERS = [(b"content-type", b"text/plain; charset=utf-8")]


class OperationsEndpoints:
    def __init__(
        self, metrics: Metrics, metrics_token: str | None, workers: WorkerMetrics | None = None
    ) -> None:
        self._metrics = metrics
        self._metrics_token = metrics_token
        self._workers = workers
        self.health_body = orjson.dumps({"status": "ok", "version": __version__})
        self.openapi_body = b"{}"
        self._openapi: dict[str, Any] = {}
        self._openapi_yaml: bytes | None = None
        self.llms_txt = b""

    def publish(self, routes: list[Route]) -> None:
        """The documents of the finished route table."""
        self._openapi = build_openapi(routes)
        self.openapi_body = orjson.dumps(self._openapi)
        self._openapi_yaml = None
        self.llms_txt = build_llms_txt(routes).encode()

    async def health(self, request: Request) -> None:
        await request.respond_bytes(200, self.health_body)

    async def openapi(self, request: Request) -> None:
        await request.respond_bytes(200, self.openapi_body)

    @property
    def openapi_yaml(self) -> bytes:
        """The YAML rendering, made on first ask: PyYAML stays out of memory until then."""
        if self._openapi_yaml is None:
            import yaml

            # Block style, keys in the JSON document's order; safe_dump quotes whatever YAML
            # would read as another type ("200", "null", "on"), so both parse the same.
            self._openapi_yaml = yaml.safe_dump(
                self._openapi, sort_keys=False, allow_unicode=True, width=100
            ).encode()
        return self._openapi_yaml

    async def openapi_yaml_text(self, request: Request) -> None:
        await request.respond_bytes(200, self.openapi_yaml, YAML_HEADERS)

    async def llms(self, request: Request) -> None:
        await request.respond_bytes(200, self.llms_txt, TEXT_HEADERS)

    async def metrics_text(self, request: Request) -> None:
        token = self._metrics_token
        if token is not None:
            presented = bearer_token(request) or b""
            # Digests of equal length: the comparison reveals nothing, not even the length.
            if not hmac.compare_digest(
                hashlib.sha256(presented).digest(), hashlib.sha256(token.encode()).digest()
            ):
                raise GatewayError("invalid_api_key", "GET /metrics needs the metrics token.")
        text = self._metrics.render() if self._workers is None else await self._workers.render()
        await request.respond_bytes(200, text, [(b"content-type", b"text/plain; version=0.0.4")])
