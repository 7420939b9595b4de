"""The public API's shapes: the error table and envelope, public ids, request validation, the
JSON Schemas of every body and the OpenAPI document built from them.

May import: ``gateway.config`` (settings types), ``providers`` (upstream errors to map); never
anything that runs a request.
"""
