"""What the hosted image adapters (``replicate``, ``fal``) share around a provider's job.

Hosted models run as jobs the adapter polls inside ``generate``: ``poll_until`` waits between
polls (``poll_interval_s``) and gives up at the provider's total timeout; ``stop_job`` sends
the provider's cancel when ``generate`` ends before the job did (the client left, the deadline
passed, a poll failed), so nobody pays for images no one will see; ``poll_or_cancel`` is the
two together. Outputs come back as bytes: ``image_type`` names them from their own magic numbers
(a URL's extension may lie), ``decode_data_uri`` reads the inline ones and ``fetch_output``
either kind.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from providers.base import UpstreamError
from providers.images.base import ImageOutput

DEFAULT_POLL_INTERVAL_S = 1.0
# A cancel is a courtesy to the provider: it may not hold up the caller for long.
CANCEL_TIMEOUT_S = 10.0

# Cancels still on their way when their caller was cancelled again; kept so they are not
# collected before they finish.
_stopping: set[asyncio.Task[None]] = set()


async def poll_until(
    finished: Callable[[], Awaitable[bool]], interval: float, within_s: float
) -> None:
    """Call ``finished`` every ``interval`` seconds until it says True; a ``timeout`` error
    once ``within_s`` seconds have passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not await finished():
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise UpstreamError("timeout", "The provider did not finish the images in time.")
        await asyncio.sleep(min(interval, remaining))


async def stop_job(cancel: Callable[[], Awaitable[None]]) -> None:
    """Send the provider's cancel, bounded and shielded: it completes even when the caller is
    being cancelled again, and its own failure is dropped: the caller re-raises the error that
    ended the job, which is the one a client must see (a lost cancel costs only the provider's
    compute until the job ends by itself)."""

    async def bounded() -> None:
        with contextlib.suppress(UpstreamError, TimeoutError):
            await asyncio.wait_for(cancel(), CANCEL_TIMEOUT_S)

    task = asyncio.ensure_future(bounded())
    _stopping.add(task)
    task.add_done_callback(_stopping.discard)
    # Cancelled again while canceling: the task goes on, and the caller re-raises its own.
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.shield(task)


async def poll_or_cancel(
    finished: Callable[[], Awaitable[bool]],
    interval: float,
    within_s: float,
    cancel: Callable[[], Awaitable[None]],
) -> None:
    """``poll_until``; the job is canceled upstream if that ends any other way than finished."""
    try:
        await poll_until(finished, interval, within_s)
    except BaseException:  # the client left, the deadline passed or a poll failed
        await stop_job(cancel)
        raise


def image_type(data: bytes) -> str | None:
    """``image/png``, ``image/jpeg`` or ``image/webp`` from the bytes' signature, else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def checked_image(data: bytes) -> tuple[bytes, str]:
    """An output's bytes and type; a provider error when they are not an image."""
    content_type = image_type(data)
    if content_type is None:
        raise UpstreamError("server", "The provider's output was not a PNG, JPEG or WebP image.")
    return data, content_type


def decode_data_uri(uri: str) -> bytes:
    """The bytes of a base64 ``data:`` URI."""
    header, _, payload = uri.partition(",")
    if not header.endswith(";base64"):
        raise UpstreamError("server", "The provider's inline image was not base64.")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UpstreamError("server", "The provider's inline image was not base64.") from exc


async def fetch_output(url: str, download: Callable[[str], AsyncIterator[bytes]]) -> ImageOutput:
    """The image behind an output URL: inline when it is a ``data:`` URI, else downloaded."""
    if url.startswith("data:"):
        data = decode_data_uri(url)
    else:
        data = b"".join([chunk async for chunk in download(url)])
    data, content_type = checked_image(data)
    return ImageOutput(data, content_type)
