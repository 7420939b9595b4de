"""``GET /v1/health``, ``GET /metrics`` and ``GET /openapi.json``: what operators and tools read.

Health and the OpenAPI document are rendered once (the document from the route table, handed
over by ``publish`` once the table exists); ``/metrics`` may require the metrics token, and
under ``--workers N`` answers with every worker's series (``gateway.worker_metrics``).
"""

from __future__ import annotations

import hashlib
import hmac

import orjson

from gateway import __version__
from gateway.contract.errors import GatewayError
from gateway.http.asgi import Request
from gateway.metrics import Metrics
from gateway.policy.auth import bearer_token
from gateway.worker_metrics import WorkerMetrics


class OperationsEndpoints:
    def __init__(
        self, metrics: Metrics, metrics_token: str | None, workers: WorkerMetrics | None = None
    ) -> None:
        self._metrics = metrics
        self._metrics_token = metrics_token
        self._workers = workers
        self.health_body = orjson.dumps({"status": "ok", "version": __version__})
        self.openapi_body = b"{}"

    def publish(self, openapi: dict[str, object]) -> None:
        """The OpenAPI document, built from the finished route table."""
        self.openapi_body = orjson.dumps(openapi)

    async def health(self, request: Request) -> None:
        await request.respond_bytes(200, self.health_body)

    async def openapi(self, request: Request) -> None:
        await request.respond_bytes(200, self.openapi_body)

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
