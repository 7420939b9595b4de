"""What a request may do and how it is served: authentication, the model catalog and routing,
rate limits and load shedding, Idempotency-Key, and the relay that runs a routing plan against
the adapters.

May import: ``gateway.contract``, ``gateway.config``, ``gateway.stores``, ``gateway.http``,
``gateway.metrics``, ``gateway.logs``, ``providers``. Never an endpoint.
"""
