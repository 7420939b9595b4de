"""The HTTP edge: the lean ASGI request/response layer, the route dispatcher, the middleware
every request passes, uvicorn's protocol with deadlines and head limits, JSON body reading and
client-disconnect handling.

May import: ``gateway.contract``, ``gateway.metrics``, ``gateway.logs``, ``gateway.config``.
Never an endpoint, a policy, a store or a provider: the edge knows requests, not what they ask
for.
"""
