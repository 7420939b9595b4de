"""The one seam through which adapters talk HTTP to upstreams.

It owns the pooled clients, the timeouts, the bound on response sizes, and the mapping of
transport failures to ``UpstreamError``. The chat hot path (``post_json``, ``open_stream``) runs
on the lean keep-alive client of ``providers/http/h1.py``; multipart requests and downloads from any
URL (the music providers) run on aiohttp, measured several times faster than httpx's default
transport (see the README). Adapters give this seam bytes and a function that turns a provider's
error response into an ``UpstreamError``; they never touch either client themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, BinaryIO

from providers.base import ProviderSettings, UpstreamError, read_options
from providers.http.framing import Origin, encode_headers, tls_context
from providers.http.h1_pool import H1Pool
from providers.http.proxy import proxy_for
from providers.http.sse import sse_batches
from providers.http.transport import transport_error
from providers.http.values import (
    FormBytes,
    FormFile,
    Reply,
    UpstreamOptions,
)
from providers.scrub import Scrubber, SecretIndex

if TYPE_CHECKING:
    import aiohttp
    from multidict import CIMultiDictProxy

# (status, body, lower-cased headers, the provider's scrubber) -> the error; the mapper cleans
# the provider's text with the scrubber, once, before it goes into the error.
ErrorMapper = Callable[[int, bytes, Mapping[str, str], Scrubber], UpstreamError]

DOWNLOAD_CHUNK_BYTES = 256 * 1024
# The longest line of an event stream (or max_response_bytes when smaller). An unfinished line
# is copied again with every read that extends it, so its cost grows with the square of its
# length: 1 MiB in 64 KiB reads costs the event loop ~10-20 ms, 32 MiB would block it ~40 s.
MAX_EVENT_LINE_BYTES = 1024 * 1024


def _proxy_refused() -> UpstreamError:
    # A proxy that refuses a plain-http request answers it itself: that is egress failing,
    # not the provider judging the request.
    return UpstreamError("connect", "The egress proxy refused the request (407).")


class HttpUpstream:
    """A pooled HTTP client bound to one provider's base URL; ``options`` default to those of
    ``settings``."""

    # Set with the aiohttp session, on its first use.
    _sync_timeout: aiohttp.ClientTimeout
    _stream_timeout: aiohttp.ClientTimeout

    def __init__(
        self,
        settings: ProviderSettings,
        headers: Mapping[str, str],
        options: UpstreamOptions | None = None,
    ) -> None:
        self._settings = settings
        self._options = (
            options if options is not None else read_options(UpstreamOptions, settings.options)
        )
        self._scrubber = settings.scrubber or Scrubber(SecretIndex((settings.api_key,)))
        self._base_url = settings.base_url.rstrip("/")
        self._headers = {"content-type": "application/json", **headers}
        self._max_response_bytes = self._options.max_response_bytes
        self._session: aiohttp.ClientSession | None = None
        self._started = False
        self._pool: H1Pool | None = None
        self._heads: dict[str, bytes] = {}  # request line and fixed headers, per path
        self._fixed_head = b""

    async def start(self) -> None:
        ca_file = self._options.ca_file
        if self._base_url:
            proxy = proxy_for(self._base_url, self._options.proxy_url)
            origin = Origin.parse(self._base_url, ca_file, proxy)
            self._pool = H1Pool(
                origin,
                max_connections=self._settings.max_connections,
                connect_timeout=self._settings.connect_timeout,
            )
            # JSON in; identity out (chat bodies are small: decompressing costs more CPU than
            # the bytes saved), and no User-Agent of ours.
            fixed = {"host": origin.host_header.decode("ascii"), **self._headers}
            fixed["accept-encoding"] = "identity"
            if proxy is not None and origin.tls is None and proxy.authorization is not None:
                fixed["proxy-authorization"] = proxy.authorization  # for the proxy, in the clear
            self._fixed_head = encode_headers(fixed)
        self._started = True

    def _mapped(
        self, on_error: ErrorMapper, status: int, body: bytes, headers: Mapping[str, str]
    ) -> UpstreamError:
        """The adapter's mapping of an error response, given the provider's scrubber: some
        servers echo the credential they rejected, the model id or their own hosts, and the
        message may reach a client."""
        return on_error(status, body, headers, self._scrubber)

    @property
    def scrubber(self) -> Scrubber:
        """What cleans this provider's error text (for answers that carry a job's failure)."""
        return self._scrubber

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._started = False

    def _client(self) -> aiohttp.ClientSession:
        """The aiohttp session, made on first use: only music, image and download calls need
        it, and a gateway that makes none keeps aiohttp (~14 MB resident) out of memory."""
        if not self._started:
            raise RuntimeError("HttpUpstream used before start()")
        if self._session is None:
            import aiohttp

            settings = self._settings
            ca_file = self._options.ca_file
            connector = aiohttp.TCPConnector(
                limit=settings.max_connections,
                limit_per_host=0,
                ttl_dns_cache=300,
                ssl=tls_context(ca_file) if ca_file else True,  # True: aiohttp's default checks
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                # No User-Agent of ours; and no Accept-Encoding: chat bodies are small, so
                # decompressing them costs more CPU than the bytes saved.
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
            )
            self._sync_timeout = aiohttp.ClientTimeout(
                total=settings.total_timeout,
                sock_connect=settings.connect_timeout,
                sock_read=settings.read_timeout,
            )
            # A stream has no total deadline of its own: each read must arrive within
            # read_timeout.
            self._stream_timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=settings.connect_timeout, sock_read=settings.read_timeout
            )
        return self._session

    def _hot_pool(self) -> H1Pool:
        if self._pool is None:
            raise RuntimeError("HttpUpstream used before start() or without a base URL")
        return self._pool

    def _request(self, path: str, payload: bytes, headers: Mapping[str, str]) -> bytes:
        """The whole POST: request line, fixed and per-call headers, length, body."""
        head = self._heads.get(path)
        if head is None:
            assert self._pool is not None
            target = (self._pool.origin.request_target_prefix + path).encode("ascii")
            head = self._heads[path] = b"POST " + target + b" HTTP/1.1\r\n" + self._fixed_head
        return b"".join(
            (
                head,
                encode_headers(headers),
                b"content-length: %d\r\n\r\n" % len(payload),
                payload,
            )
        )

    async def post_json(
        self,
        path: str,
        payload: bytes,
        headers: Mapping[str, str],
        on_error: ErrorMapper,
        request_deadline: float | None = None,
    ) -> bytes:
        """POST ``payload``; return the 2xx body or raise the mapped ``UpstreamError``.

        The whole exchange (a pool slot, connecting, the answer) ends by ``total_timeout`` or
        ``request_deadline`` (loop time), whichever comes first."""
        pool = self._hot_pool()
        settings = self._settings
        now = pool.loop.time()
        deadline = now + settings.total_timeout
        if request_deadline is not None and request_deadline < deadline:
            deadline = request_deadline
        try:
            request = self._request(path, payload, headers)
            conn = await pool.acquire(deadline - now, request_deadline)
        except Exception as exc:
            raise transport_error(exc) from exc
        try:
            conn.send(
                request,
                stream=False,
                limit=self._max_response_bytes,
                read_timeout=settings.read_timeout,
                deadline=deadline,
            )
            body = await conn.read_whole()
        except UpstreamError:
            raise
        except Exception as exc:
            raise transport_error(exc) from exc
        finally:
            pool.release(conn)  # kept for reuse only if the exchange ended cleanly
        if conn.status >= 300:
            if conn.status == 407 and pool.origin.proxy is not None:
                raise _proxy_refused()
            raise self._mapped(on_error, conn.status, body, conn.headers)
        return body

    def _proxy_url(self, url: str) -> str | None:
        """The proxy aiohttp goes through for ``url`` (a download may be on another host)."""
        proxy = proxy_for(url, self._options.proxy_url)
        return None if proxy is None else proxy.url

    def url(self, path_or_url: str) -> str:
        """A path joined to the base URL; an absolute URL (one the provider gave us) as is."""
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return self._base_url + path_or_url

    async def send(
        self,
        method: str,
        path_or_url: str,
        on_error: ErrorMapper,
        *,
        payload: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        form: Sequence[tuple[str, str]] | None = None,
        files: Sequence[FormFile | FormBytes] = (),
    ) -> Reply:
        """One request (JSON ``payload``, or a multipart ``form`` plus ``files``); the 2xx reply.

        Any other status becomes ``on_error``'s ``UpstreamError``; transport failures are mapped
        by ``transport_error``. The body is bounded like every other upstream body.
        """
        data: bytes | aiohttp.Payload | None = payload
        request_headers = dict(headers or {})
        opened: list[BinaryIO] = []
        if form is not None or files:
            import aiohttp

            multipart = aiohttp.FormData(default_to_multipart=True)
            for name, value in form or ():
                multipart.add_field(name, value)
            for part in files:
                content: bytes | BinaryIO
                if isinstance(part, FormBytes):
                    content = part.data
                else:
                    content = part.path.open("rb")
                    opened.append(content)
                multipart.add_field(
                    part.field, content, filename=part.filename, content_type=part.content_type
                )
            encoded = multipart()
            data = encoded
            # Replaces the session's JSON content type with the multipart one and its boundary.
            request_headers["content-type"] = encoded.content_type
        try:
            url = self.url(path_or_url)
            async with self._client().request(
                method,
                url,
                data=data,
                headers=request_headers,
                timeout=self._sync_timeout,
                proxy=self._proxy_url(url),
            ) as response:
                body = await self._read_bounded(response)
                if response.status >= 300:
                    if response.status == 407 and self._proxy_url(url) is not None:
                        raise _proxy_refused()
                    raise self._mapped(on_error, response.status, body, _plain(response.headers))
                return Reply(response.status, _plain(response.headers), body)
        except UpstreamError:
            raise
        except Exception as exc:
            raise transport_error(exc) from exc
        finally:
            for opened_file in opened:
                opened_file.close()

    async def download(
        self, url: str, on_error: ErrorMapper, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[bytes]:
        """GET ``url`` and yield its body in chunks, bounded by ``max_download_bytes``."""
        limit = self._options.max_download_bytes
        try:
            full_url = self.url(url)
            async with self._client().get(
                full_url,
                headers=dict(headers or {}),
                timeout=self._stream_timeout,
                proxy=self._proxy_url(full_url),
            ) as response:
                if response.status >= 300:
                    body = await self._read_bounded(response)
                    if response.status == 407 and self._proxy_url(full_url) is not None:
                        raise _proxy_refused()
                    raise self._mapped(on_error, response.status, body, _plain(response.headers))
                seen = 0
                async for part in response.content.iter_chunked(DOWNLOAD_CHUNK_BYTES):
                    seen += len(part)
                    if seen > limit:
                        raise UpstreamError("server", "The provider's file was too large.")
                    yield part
        except UpstreamError:
            raise
        except Exception as exc:
            raise transport_error(exc) from exc

    @asynccontextmanager
    async def open_stream(
        self,
        path: str,
        payload: bytes,
        headers: Mapping[str, str],
        on_error: ErrorMapper,
        request_deadline: float | None = None,
    ) -> AsyncIterator[AsyncIterator[list[bytes]]]:
        """POST ``payload`` and yield an iterator over the SSE ``data:`` payloads of the answer,
        in the batches they arrived in.

        Every wait until the first batch (a pool slot, connecting, the head, the first event)
        also ends at ``request_deadline`` (loop time); after it, only the read timeout applies.
        On any exit other than the provider's normal end, the connection is closed rather than
        returned to the pool, so a client that goes away also cancels the upstream request.
        """
        pool = self._hot_pool()
        read_timeout = self._settings.read_timeout
        wait = read_timeout
        if request_deadline is not None:
            wait = min(wait, request_deadline - pool.loop.time())
        try:
            request = self._request(path, payload, headers)
            conn = await pool.acquire(wait, request_deadline)
        except Exception as exc:
            raise transport_error(exc) from exc
        try:
            try:
                conn.send(
                    request,
                    stream=True,
                    limit=self._max_response_bytes,
                    read_timeout=read_timeout,
                    deadline=request_deadline,
                )
                status, response_headers = await conn.read_head()
                if status >= 300:
                    body = await conn.read_whole()
                    if status == 407 and pool.origin.proxy is not None:
                        raise _proxy_refused()
                    raise self._mapped(on_error, status, body, response_headers)
            except UpstreamError:
                raise
            except Exception as exc:
                raise transport_error(exc) from exc
            conn.stop_deadline()  # from here each line has a deadline of its own
            yield sse_batches(
                conn,
                read_timeout,
                min(self._max_response_bytes, MAX_EVENT_LINE_BYTES),
                first_by=request_deadline,
            )
        finally:
            pool.release(conn)  # kept for reuse only if the exchange ended cleanly

    async def _read_bounded(self, response: aiohttp.ClientResponse) -> bytes:
        limit = self._max_response_bytes
        length = response.content_length
        if length is not None and length <= limit:
            return await response.read()
        parts: list[bytes] = []
        seen = 0
        async for part in response.content.iter_chunked(65536):
            seen += len(part)
            if seen > limit:
                raise UpstreamError("server", "The provider's response was too large.")
            parts.append(part)
        return b"".join(parts)


def _plain(headers: CIMultiDictProxy[str]) -> dict[str, str]:
    return {key.lower(): value for key, value in headers.items()}
