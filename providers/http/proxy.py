"""Egress through an HTTP proxy: which proxy a request to an upstream takes, and the tunnel.

A provider's ``proxy_url`` option decides for that provider (``""``: always direct); without
it the standard environment does, as curl and most HTTP clients read it: ``HTTPS_PROXY`` for
https targets, ``HTTP_PROXY`` for http ones (the lower-case names too, lower case first), and
``NO_PROXY`` (comma-separated: hosts, which also match their subdomains, ``.domain``
suffixes, IP addresses or CIDR ranges, ``*`` for all) for the targets that go direct.
Proxies are ``http://`` URLs; credentials in them (``http://user:password@proxy:3128``) are sent
as ``Proxy-Authorization: Basic`` and never logged (``Proxy`` hides them from its repr).

The chat path's client (``providers.http.h1_pool``) opens a ``CONNECT`` tunnel for an https
upstream, then runs TLS to the upstream itself through it (the proxy sees only ciphertext);
an http upstream is asked for through the proxy in absolute form. aiohttp (the music path) gets
the same proxy URL per request.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import unquote, urlsplit

MAX_CONNECT_REPLY_BYTES = 16 * 1024


class ProxyRefusedError(ConnectionError):
    """The proxy did not open the tunnel (its status line says why)."""


@dataclass(frozen=True, slots=True)
class Proxy:
    host: str
    port: int
    url: str = field(repr=False)  # with any credentials, for aiohttp
    authorization: str | None = field(default=None, repr=False)  # the header's value

    @classmethod
    def parse(cls, url: str) -> Proxy:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError("a proxy must be an http:// URL with a host")
        authorization = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        return cls(parts.hostname, parts.port or 80, url, authorization)

    def connect_request(self, host: str, port: int) -> bytes:
        authority = f"{host}:{port}"
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
        if self.authorization is not None:
            lines.append(f"Proxy-Authorization: {self.authorization}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def proxy_for(
    target_url: str, override: str | None, environ: Mapping[str, str] | None = None
) -> Proxy | None:
    """The proxy a request to ``target_url`` goes through, or None for a direct connection."""
    if override is not None:
        return Proxy.parse(override) if override else None
    env = os.environ if environ is None else environ
    parts = urlsplit(target_url)
    name = "https_proxy" if parts.scheme == "https" else "http_proxy"
    url = env.get(name) or env.get(name.upper())
    if not url:
        return None
    no_proxy = env.get("no_proxy") or env.get("NO_PROXY") or ""
    if no_proxy and bypasses(parts.hostname or "", no_proxy):
        return None
    return Proxy.parse(url)


def bypasses(host: str, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` sends ``host`` direct."""
    host = host.lower().strip("[]")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry.strip("[]"), strict=False):
                    return True
            except ValueError:
                pass
            continue
        entry = entry.rsplit(":", 1)[0] if entry.count(":") == 1 else entry  # drop a port
        entry = entry.lstrip(".")
        if host == entry or host.endswith("." + entry):
            return True
    return False


class _TunnelHandshake(asyncio.Protocol):
    """Reads the proxy's answer to CONNECT; the tunnel is open on a 2xx."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.opened: asyncio.Future[None] = loop.create_future()
        self._reply = b""

    def data_received(self, data: bytes) -> None:
        if self.opened.done():
            return
        self._reply += data
        end = self._reply.find(b"\r\n\r\n")
        if end < 0:
            if len(self._reply) > MAX_CONNECT_REPLY_BYTES:
                self.opened.set_exception(
                    ProxyRefusedError("the proxy's answer to CONNECT is too long")
                )
            return
        status_line = self._reply.split(b"\r\n", 1)[0].decode("latin-1", "replace")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[1].startswith("2") or end + 4 != len(self._reply):
            # A refusal, or bytes after the head the upstream cannot have sent yet.
            self.opened.set_exception(
                ProxyRefusedError(f"the proxy refused the tunnel: {status_line}")
            )
            return
        self.opened.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ProxyRefusedError("the proxy closed the connection"))


async def open_tunnel(
    loop: asyncio.AbstractEventLoop,
    proxy: Proxy,
    host: str,
    port: int,
) -> asyncio.BaseTransport:
    """A connection to ``host:port`` through ``proxy`` (plain bytes: the caller adds TLS)."""
    transport, handshake = await loop.create_connection(
        lambda: _TunnelHandshake(loop), proxy.host, proxy.port
    )
    try:
        # A stream transport (uvloop's are not subclasses of asyncio's transport classes).
        cast(asyncio.WriteTransport, transport).write(proxy.connect_request(host, port))
        await handshake.opened
    except BaseException:
        transport.close()
        raise
    return transport
