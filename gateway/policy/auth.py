"""Bearer authentication against the configured keys, which are held only as sha256 digests.

The presented secret is hashed and looked up by digest, then compared in constant time: timing
reveals nothing about stored keys, and the process never holds a client secret in memory.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from gateway.config.settings import KeySettings
from gateway.contract.errors import GatewayError
from gateway.http.asgi import Request


class KeyRing:
    def __init__(self, keys: Mapping[str, KeySettings]) -> None:
        self._by_digest = {key.sha256: key for key in keys.values()}

    def authenticate(self, request: Request) -> KeySettings:
        token = bearer_token(request)
        if token is None:
            raise GatewayError("missing_api_key")
        digest = hashlib.sha256(token).digest()
        key = self._by_digest.get(digest)
        if key is None or not hmac.compare_digest(key.sha256, digest) or key.disabled:
            raise GatewayError("invalid_api_key")
        request.ctx.key_name = key.name
        return key


def bearer_token(request: Request) -> bytes | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive)."""
    raw = request.header(b"authorization")
    if raw is None:
        return None
    scheme, _, token = raw.strip().partition(b" ")
    token = token.strip()
    if scheme.lower() != b"bearer" or not token:
        return None
    return token
