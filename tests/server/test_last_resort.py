"""An unexpected exception still gets the envelope and the request id, never a trace."""

from __future__ import annotations

import httpx
import pytest

from gateway.http.asgi import Receive, Scope, Send
from gateway.http.middleware import EdgeMiddleware
from gateway.metrics import Metrics
from tests.fakes.server import UvicornServer


async def broken_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        message = await receive()
        await send({"type": message["type"] + ".complete"})
        return
    if scope["path"] == "/after-start":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise RuntimeError("secret internal detail at /srv/app.py line 3")


def test_internal_error_envelope_with_request_id() -> None:
    metrics = Metrics()
    app = EdgeMiddleware(broken_endpoint, metrics)
    with UvicornServer(app) as server:
        response = httpx.get(server.url + "/boom", headers={"x-request-id": "trace-me"})
        assert response.status_code == 500
        assert response.headers["x-request-id"] == "trace-me"
        error = response.json()["error"]
        assert error == {
            "code": "internal_error",
            "message": "Internal error.",
            "type": "api_error",
            "retryable": True,
            "request_id": "trace-me",
            "details": [],
            "param": None,
        }
        assert "secret internal detail" not in response.text
        # A failure after the response began cannot be reported in it: the body is cut short.
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(server.url + "/after-start")
    text = metrics.render().decode()
    assert 'beatra_http_requests_total{method="GET",route="unmatched",status="500"} 1.0' in text
