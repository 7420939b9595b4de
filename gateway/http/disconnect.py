"""Cancel a request's work when its client goes away.

While an endpoint waits on a provider, it hears of a lost client connection; if the client
leaves first, the endpoint's task is cancelled (so the upstream call is cancelled and its
connection closed) and the request is recorded as a disconnect rather than a failure.

The gateway's own server protocol (``gateway/http/server_protocol.py``) tells it directly: it puts a
``DisconnectHooks`` in each request's scope and calls the registered callbacks when the socket
closes. Under any other ASGI server a watcher task listens for ``http.disconnect`` instead: the
same outcome for the price of a task per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from gateway.http.asgi import Request

HOOKS_EXTENSION = "beatra.disconnect"  # scope["extensions"][HOOKS_EXTENSION]["hooks"]


class DisconnectHooks:
    """One per client connection: the callbacks to run, at once, when the socket is lost."""

    __slots__ = ("callbacks", "lost")

    def __init__(self) -> None:
        self.callbacks: set[Callable[[], None]] = set()
        self.lost = False

    def connection_lost(self) -> None:
        self.lost = True
        for callback in tuple(self.callbacks):
            callback()


class DisconnectGuard:
    """Call ``finishing()`` just before the last response message: from then on, a
    ``http.disconnect`` is the server's ordinary end-of-response signal, not a client leaving."""

    __slots__ = ("_finishing",)

    def __init__(self) -> None:
        self._finishing = False

    def finishing(self) -> None:
        self._finishing = True

    @property
    def is_finishing(self) -> bool:
        return self._finishing


class cancel_on_disconnect:  # noqa: N801 (used like a function: ``async with cancel_on_disconnect(r)``)
    """Run the body of the ``async with`` cancelled as soon as the client disconnects.

    Must be entered after the request body has been read completely. (A plain class rather
    than ``@asynccontextmanager``: it runs on every request and costs half as much.)
    """

    __slots__ = ("_ctx", "_guard", "_hooks", "_receive", "_task", "_watcher")

    def __init__(self, request: Request) -> None:
        self._receive = request.receive
        self._ctx = request.ctx
        self._guard = DisconnectGuard()
        self._task: asyncio.Task[Any] | None = None
        self._watcher: asyncio.Task[None] | None = None
        extension = (request.scope.get("extensions") or {}).get(HOOKS_EXTENSION)
        self._hooks: DisconnectHooks | None = extension["hooks"] if extension else None

    def _client_left(self) -> None:
        if not self._guard.is_finishing and self._task is not None:
            self._ctx.disconnected = True
            self._task.cancel()

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self._client_left()
                return

    async def __aenter__(self) -> DisconnectGuard:
        self._task = asyncio.current_task()
        hooks = self._hooks
        if hooks is None:
            self._watcher = asyncio.create_task(self._watch())
        elif hooks.lost:
            self._client_left()  # gone already: the next await raises CancelledError
        else:
            hooks.callbacks.add(self._client_left)
        return self._guard

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: object
    ) -> bool:
        if self._hooks is not None:
            self._hooks.callbacks.discard(self._client_left)
        if self._watcher is not None and (kind is not None or not self._guard.is_finishing):
            # After the last response message the server answers the watcher's receive() with
            # http.disconnect by itself, so the watcher ends without being cancelled. That
            # matters: a cancelled task leaves a reference cycle (its CancelledError's traceback
            # holds its frames) for the garbage collector, one per request.
            self._watcher.cancel()
        if (
            kind is not None
            and issubclass(kind, asyncio.CancelledError)
            and self._ctx.disconnected
            and self._task is not None
        ):
            self._task.uncancel()  # the cancellation was ours; the request simply ends here
            return True
        return False
