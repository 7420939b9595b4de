"""The model catalog and the routing table: what a requested ``model`` resolves to.

``resolve`` turns ``auto``, an alias or a catalog id into an ordered plan of candidates (catalog
model + deployment) that the key may use; the relay tries them in order. Deployments of one model
are ordered by weighted random choice, so weights spread load without any shared state.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from gateway.config.settings import AUTO_MODEL, Deployment, KeySettings, ModelSettings, Settings
from gateway.contract.errors import GatewayError, invalid


@dataclass(frozen=True, slots=True)
class Candidate:
    model: ModelSettings
    deployment: Deployment


class Catalog:
    def __init__(self, settings: Settings, rng: random.Random | None = None) -> None:
        self.models = settings.models
        self.auto = settings.auto
        self.aliases = settings.aliases
        self._rng = rng or random.Random()

    def resolve(self, asked: str, key: KeySettings, capability: str) -> list[Candidate]:
        if asked == AUTO_MODEL:
            allowed = [self.models[m] for m in self.auto if key.allows(m)]
            if not allowed:
                raise GatewayError("permission_denied", "This API key may not use any auto model.")
            capable = [m for m in allowed if capability in m.capabilities]
            if not capable:
                raise invalid([{"field": "model", "issue": f"no auto model supports {capability}"}])
            return [c for model in capable for c in self._deployments(model)]
        model_id = self.aliases.get(asked, asked)
        model = self.models.get(model_id)
        if model is None:
            raise GatewayError("model_not_found", f"The model {asked[:100]!r} does not exist.")
        # Messages name what the client sent: the catalog id behind an alias may be hidden.
        if not key.allows(model.id):
            raise GatewayError("permission_denied", f"This API key may not use {asked[:100]!r}.")
        if capability not in model.capabilities:
            raise invalid(
                [{"field": "model", "issue": f"{asked[:100]} does not support {capability}"}]
            )
        return self._deployments(model)

    def _deployments(self, model: ModelSettings) -> list[Candidate]:
        deployments = model.deployments
        if len(deployments) == 1:
            return [Candidate(model, deployments[0])]

        # Weighted random order (Efraimidis-Spirakis keys): heavier deployments tend to go first.
        def weight_key(deployment: Deployment) -> float:
            if deployment.weight <= 0:
                return -1.0
            return float(self._rng.random() ** (1.0 / deployment.weight))

        ordered = sorted(deployments, key=weight_key, reverse=True)
        return [Candidate(model, deployment) for deployment in ordered]

    def visible_models(self, key: KeySettings) -> list[ModelSettings]:
        return [model for model in self.models.values() if key.allows(model.id)]

    def lookup_visible(self, model_id: str, key: KeySettings) -> ModelSettings | None:
        model = self.models.get(self.aliases.get(model_id, model_id))
        return model if model is not None and key.allows(model.id) else None
