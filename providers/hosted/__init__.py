"""What the music and image adapters of one hosted provider share: its HTTP API as such.

``replicate_api`` (predictions: create, poll, cancel, outputs, problem+json errors) and
``fal_api`` (the queue: submit, status, result, cancel, fal's error bodies), each with the
bearer of its credential. Per-model inputs and outputs stay with the adapters.

May import: ``providers`` (base, scrub), ``providers.http``. Never an adapter package, never
``gateway``.
"""
