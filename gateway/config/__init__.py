"""The configuration: the typed settings (``settings`` is the root and what the rest of the
gateway imports), the strict TOML ``reader``, the data-driven ``schema`` reader that turns a
section into its dataclass, and the sections: the request path's (``sections``), the services'
(``services``: state, storage, tasks), providers with their options (``adapters``) and the
catalog (``catalog``: models, routing, keys).

May import: ``providers`` (adapter registries and settings types) and the standard library.
"""
