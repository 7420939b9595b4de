"""The route table and its dispatcher; the same table generates ``/openapi.json``.

Static paths are one dict lookup; templated paths (``/v1/tasks/{id}``) are matched segment by
segment. Unknown paths are ``not_found``, a known path with the wrong method is
``method_not_allowed`` (with ``Allow``); under ``/v1/`` both need a valid key first (every /v1
route but health does), so a keyless client learns nothing about the route table. Matched routes
authenticate in their handler, once. Any ``GatewayError`` an endpoint raises before its
response started is rendered here as the envelope.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from gateway.contract.errors import (
    DependencyUnavailable,
    GatewayError,
    error_response,
)
from gateway.http.asgi import CONTEXT_KEY, Receive, Request, RequestContext, Scope, Send

API_PREFIX = "/v1/"  # the keyed namespace: its unknown paths and wrong methods need a key
Handler = Callable[[Request], Awaitable[None]]
_log = structlog.get_logger("beatra.gateway")


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    auth: bool = True
    request_schema: dict[str, Any] | None = None
    request_media: str = "application/json"
    request_encoding: dict[str, Any] | None = None  # OpenAPI's per-part encoding (multipart)
    query: tuple[dict[str, Any], ...] = ()
    responses: dict[int, dict[str, Any]] = field(default_factory=dict)
    public: bool = True  # listed in /openapi.json
    # The last path parameter takes the rest of the path, slashes included: catalog ids such as
    # ``meta-llama/Llama-3.1-8B`` (clients send the slash as is or as %2F; both arrive decoded).
    rest: bool = False

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.path.strip("/").split("/"))


class Router:
    def __init__(self, routes: list[Route], authenticate: Callable[[Request], object]) -> None:
        """``authenticate`` raises the 401 of a request without a valid key (the policy's
        ``KeyRing.authenticate``): the router only decides when it must run."""
        self.routes = routes
        self._authenticate = authenticate
        # Requests inside this router now. A reload retires a router (``retire``) and closes
        # what only its generation used once the count reaches zero.
        self.active = 0
        self._drained: asyncio.Event | None = None
        self._static: dict[str, dict[str, Route]] = {}
        # (segments, whether the last takes the rest of the path, method -> route)
        self._templated: list[tuple[tuple[str, ...], bool, dict[str, Route]]] = []
        for route in routes:
            if "{" in route.path:
                for segments, rest, methods in self._templated:
                    if segments == route.segments and rest == route.rest:
                        methods[route.method] = route
                        break
                else:
                    self._templated.append((route.segments, route.rest, {route.method: route}))
            else:
                self._static.setdefault(route.path, {})[route.method] = route

    def match(self, path: str) -> tuple[dict[str, Route], dict[str, str]] | None:
        methods = self._static.get(path)
        if methods is not None:
            return methods, {}
        parts = path.strip("/").split("/")
        for segments, rest, candidates in self._templated:
            found = parts
            if rest and len(parts) > len(segments):
                last = len(segments) - 1
                found = [*parts[:last], "/".join(parts[last:])]
            elif len(segments) != len(parts):
                continue
            params: dict[str, str] = {}
            for pattern, part in zip(segments, found, strict=True):
                if pattern.startswith("{"):
                    if not part:
                        break
                    params[pattern[1:-1]] = part
                elif pattern != part:
                    break
            else:
                return candidates, params
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return  # handled by the application object
        ctx: RequestContext = scope[CONTEXT_KEY]
        request = Request(scope, receive, send)
        self.active += 1
        try:
            found = self.match(scope["path"])
            if found is None:
                if scope["path"].startswith(API_PREFIX):
                    self._authenticate(request)
                raise GatewayError("not_found", f"No route for {scope['path'][:200]}.")
            methods, params = found
            route = methods.get(scope["method"])
            if route is None:
                if scope["method"] == "HEAD" and "GET" in methods:
                    route = methods["GET"]
                else:
                    ctx.route = next(iter(methods.values())).path
                    if ctx.route.startswith(API_PREFIX) and any(r.auth for r in methods.values()):
                        self._authenticate(request)
                    allow = ", ".join(sorted(methods))
                    raise GatewayError("method_not_allowed", headers={"allow": allow})
            ctx.route = route.path
            request.params = params
            await route.handler(request)
        except GatewayError as error:
            await send_error(request, error)
        except DependencyUnavailable as exc:
            _log.error("state_unavailable", request_id=ctx.request_id, error=str(exc))
            await send_error(request, exc.answer())
        finally:
            self.active -= 1
            if self._drained is not None and not self.active:
                self._drained.set()

    async def retire(self) -> None:
        """Wait until every request this router took has ended (it takes no new ones: the edge
        dispatches to its successor)."""
        if self.active:
            self._drained = asyncio.Event()
            await self._drained.wait()


async def send_error(request: Request, error: GatewayError) -> None:
    """Render ``error`` as the envelope, unless a response has already begun."""
    ctx = request.ctx
    ctx.error_code = error.code
    if ctx.response_started:
        _log.warning("error_after_start", request_id=ctx.request_id, code=error.code)
        return
    status, headers, body = error_response(error, ctx.request_id)
    await request.respond_bytes(status, body, headers)
