"""Configuration files shipped with the gateway: ``default.toml`` (the embedded default, runs
with no provider keys) and ``example.toml`` (real upstreams)."""
