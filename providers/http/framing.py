"""HTTP/1.1 framing shared by both clients: where a request goes (``Origin``, TLS), how its
header lines are encoded, what an unreadable answer is, and what ``Retry-After`` says.

Pure functions and values: no sockets. ``providers.http.h1`` frames the chat path's requests
with them; ``providers.http.upstream`` uses the same origin, TLS and Retry-After rules for
aiohttp.
"""

from __future__ import annotations

import email.utils
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from providers.http.proxy import Proxy


class ProtocolError(Exception):
    """The provider's bytes are not an HTTP/1.1 response this client can read."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a pool connects, and the bytes every request to it starts with."""

    host: str
    port: int
    tls: ssl.SSLContext | None
    base_path: str  # the base URL's path, without a trailing slash: prefixed to request paths
    host_header: bytes
    proxy: Proxy | None = None  # egress through this proxy (providers.http.proxy)

    @classmethod
    def parse(cls, base_url: str, ca_file: str | None = None, proxy: Proxy | None = None) -> Origin:
        """The origin of ``base_url``; for https, trusting the system's CAs plus ``ca_file``."""
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        tls = tls_context(ca_file) if parts.scheme == "https" else None
        port = parts.port or (443 if tls else 80)
        netloc = parts.netloc.rpartition("@")[2]  # never send userinfo in Host
        return cls(
            host=parts.hostname,
            port=port,
            tls=tls,
            base_path=parts.path.rstrip("/"),
            host_header=netloc.encode("idna" if not netloc.isascii() else "ascii"),
            proxy=proxy,
        )

    @property
    def request_target_prefix(self) -> str:
        """What precedes a request's path: the base path, or for plain http through a proxy
        the absolute form (``http://host:port/base``) the proxy needs."""
        if self.proxy is not None and self.tls is None:
            return f"http://{self.host_header.decode('ascii')}{self.base_path}"
        return self.base_path


def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """Certificate-verifying TLS: the system's CAs, plus those in ``ca_file`` (a PEM bundle, for
    upstreams behind a private CA)."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def encode_headers(headers: Mapping[str, str]) -> bytes:
    """``name: value\\r\\n`` lines; a CR, LF or NUL in a name or value (header injection) is
    refused rather than sent."""
    lines = []
    for name, value in headers.items():
        line = f"{name}: {value}\r\n"
        if line.count("\r") != 1 or "\n" in line[:-1] or "\0" in line:
            raise ValueError(f"header {name!r} holds a line break")
        lines.append(line.encode("latin-1"))
    return b"".join(lines)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait as the provider says: ``retry-after-ms``, then ``retry-after``."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
