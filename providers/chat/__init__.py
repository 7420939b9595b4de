"""Chat adapters: OpenAI-compatible servers, Anthropic's Messages API (with its pure request and
response translators) and the offline ``local`` provider.

May import: ``providers`` (base, scrub, tokens), ``providers.http``. Never ``gateway``.
"""
