"""The configuration: typed settings, the strict TOML reader that builds them, and the sections of
the services around the request path (state, storage, tasks).

May import: ``providers`` (adapter registries and settings types) and the standard library.
"""
