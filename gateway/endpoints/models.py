"""``GET /v1/models`` and ``GET /v1/models/{id}``: the catalog a key may use, OpenAI-shaped,
with capability metadata; ``auto`` is listed with what its candidates can do together."""

from __future__ import annotations

from typing import Any

from gateway.config.settings import AUTO_MODEL, CAPABILITIES, KeySettings, ModelSettings
from gateway.contract.errors import GatewayError
from gateway.http.asgi import Request
from gateway.policy.auth import KeyRing
from gateway.policy.routing import Catalog


def model_object(model: ModelSettings) -> dict[str, Any]:
    return {
        "id": model.id,
        "object": "model",
        "created": model.created,
        "owned_by": model.owned_by,
        "capabilities": list(model.capabilities),
        "status": model.status,
        "context_window": model.context_window,
        "max_output_tokens": model.max_output_tokens,
    }


class CatalogEndpoints:
    def __init__(self, keys: KeyRing, catalog: Catalog) -> None:
        self._keys = keys
        self._catalog = catalog

    def _auto_object(self, key: KeySettings) -> dict[str, Any] | None:
        members = [self._catalog.models[m] for m in self._catalog.auto if key.allows(m)]
        if not members:
            return None
        capabilities = [c for c in CAPABILITIES if any(c in m.capabilities for m in members)]
        return {
            "id": AUTO_MODEL,
            "object": "model",
            "created": min(m.created for m in members),
            "owned_by": "beatra",
            "capabilities": capabilities,
            "status": "available" if all(m.status == "available" for m in members) else "preview",
            "context_window": min(m.context_window for m in members),
            "max_output_tokens": min(m.max_output_tokens for m in members),
        }

    async def list_models(self, request: Request) -> None:
        key = self._keys.authenticate(request)
        data = [model_object(m) for m in self._catalog.visible_models(key)]
        auto = self._auto_object(key)
        if auto is not None:
            data.insert(0, auto)
        await request.respond_json(200, {"object": "list", "data": data})

    async def get_model(self, request: Request) -> None:
        key = self._keys.authenticate(request)
        model_id = request.params["id"]
        if model_id == AUTO_MODEL:
            auto = self._auto_object(key)
            if auto is not None:
                await request.respond_json(200, auto)
                return
        model = self._catalog.lookup_visible(model_id, key)
        if model is None:
            raise GatewayError("model_not_found", f"The model {model_id[:100]!r} does not exist.")
        await request.respond_json(200, model_object(model))
