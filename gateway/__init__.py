"""beatra-gateway: the HTTP service (app, middleware, endpoints, policies, stores)."""

__version__ = "0.1.0"
