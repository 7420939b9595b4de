"""How a failure of the HTTP transport (either client, sockets, timeouts) reaches the relay: as one
``UpstreamError`` whose kind says whether to retry, fall back or give up."""

from __future__ import annotations

import asyncio
import sys

from providers.base import UpstreamError


def transport_error(exc: BaseException) -> UpstreamError:
    """Map a client or socket failure to the ``UpstreamError`` the relay understands: timeouts
    and lost connections are retryable; anything else (a malformed response, say) is the
    provider's fault."""
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return UpstreamError("timeout", "The provider did not answer in time.")
    if isinstance(exc, ConnectionError | OSError):
        return UpstreamError("connect", "The connection to the provider failed.")
    # aiohttp is loaded only by the clients that use it; if it is not loaded, ``exc`` is not
    # one of its errors.
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is not None and isinstance(
        exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError
    ):
        return UpstreamError("connect", "The connection to the provider failed.")
    return UpstreamError("server", "The provider's response could not be read.")
