"""``GET /v1/responses/{id}`` and ``DELETE /v1/responses/{id}``: stored responses, owner only.

A stored response (``POST /v1/responses`` without ``store: false``) is read back as the
``Response`` object it was answered with; deleting it answers OpenAI's
``{id, object: "response", deleted: true}``. Another key's response is ``not_found``, exactly
like one that never existed or whose retention ran out.
"""

from __future__ import annotations

from gateway.contract.errors import GatewayError
from gateway.contract.ids import RESPONSE_ID
from gateway.http.asgi import Request
from gateway.policy.auth import KeyRing
from gateway.stores.base import ResponseStore, SavedResponse


class StoredResponseEndpoints:
    def __init__(self, keys: KeyRing, store: ResponseStore) -> None:
        self._keys = keys
        self._store = store

    async def _owned(self, request: Request) -> SavedResponse:
        key = self._keys.authenticate(request)
        response_id = request.params["id"]
        saved = await self._store.get(response_id) if RESPONSE_ID.fullmatch(response_id) else None
        if saved is None or saved.owner != key.name:
            raise GatewayError("not_found", "No such response.")
        return saved

    async def get(self, request: Request) -> None:
        await request.respond_json(200, (await self._owned(request)).response)

    async def delete(self, request: Request) -> None:
        saved = await self._owned(request)
        await self._store.delete(saved.response_id)
        await request.respond_json(
            200, {"id": saved.response_id, "object": "response", "deleted": True}
        )
