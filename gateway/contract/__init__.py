"""The public API's shapes: the error table, the envelope and what an upstream failure becomes,
public ids, request validation, the JSON Schemas of every body and the OpenAPI document built
from the route table.

May import: ``gateway.config`` (settings types), ``gateway.http`` (the route type and header
patterns the OpenAPI document describes), ``gateway.policy`` (patterns and plan types),
``providers`` (upstream errors, adapter abilities). Never an endpoint, the task runner or a
store.
"""
