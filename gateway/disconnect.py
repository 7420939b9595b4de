"""Cancel a request's work when its client goes away.

While an endpoint waits on a provider, a watcher listens for ``http.disconnect``; if the client
leaves first, the endpoint's task is cancelled (so the upstream call is cancelled and its
connection closed) and the request is recorded as a disconnect rather than a failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gateway.asgi import Request


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


@asynccontextmanager
async def cancel_on_disconnect(request: Request) -> AsyncIterator[DisconnectGuard]:
    """Run the body of the ``async with`` cancelled as soon as the client disconnects.

    Must be entered after the request body has been read completely.
    """
    task = asyncio.current_task()
    assert task is not None
    guard = DisconnectGuard()
    ctx = request.ctx

    async def watch() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                if not guard.is_finishing:
                    ctx.disconnected = True
                    task.cancel()
                return

    watcher = asyncio.create_task(watch())
    try:
        yield guard
    except asyncio.CancelledError:
        if not ctx.disconnected:
            raise
        task.uncancel()  # the cancellation was ours; the request simply ends here
    finally:
        watcher.cancel()
