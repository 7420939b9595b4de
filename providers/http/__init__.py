"""The HTTP clients adapters talk through: ``upstream.HttpUpstream`` (the one seam, with error
mapping and bounded bodies), the lean HTTP/1.1 client and its pool on the chat path, server-sent
event reading, and transport failures as ``UpstreamError``.

May import: ``providers.base``, ``providers.scrub``. Never an adapter, never ``gateway``.
"""
