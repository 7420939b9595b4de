"""The values the HTTP seam takes and gives: the options every HTTP adapter shares, a reply,
a file part of a multipart request (streamed from disk, or bytes already in memory).
(``providers.http.upstream`` re-exports them.)"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class UpstreamOptions:
    """The options every HTTP adapter takes (their own ``Options`` extend these)."""

    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES  # a larger answer is a provider fault
    ca_file: str | None = None  # a PEM bundle of private CAs to trust besides the system's
    max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES
    # Egress: an http:// proxy URL for this provider, "" for always direct; unset, the
    # environment's HTTPS_PROXY / HTTP_PROXY / NO_PROXY decide (providers.http.proxy).
    proxy_url: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """A provider's 2xx answer to a non-streaming request."""

    status: int
    headers: Mapping[str, str]  # lower-cased names
    body: bytes


@dataclass(frozen=True, slots=True)
class FormFile:
    """A file part of a multipart request, streamed from disk (never read whole into memory)."""

    field: str
    path: Path
    filename: str
    content_type: str


@dataclass(frozen=True, slots=True)
class FormBytes:
    """A file part of a multipart request whose bytes are already in memory (a client's image)."""

    field: str
    data: bytes
    filename: str
    content_type: str
