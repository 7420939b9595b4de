"""Image adapters: the contract (``base``), the offline model (``local``) and its painter, and
the hosted models of Replicate (``replicate``) and fal.ai (``fal``).

May import: ``providers`` (base, scrub), ``providers.http``, ``providers.hosted``. Never
another adapter package, never ``gateway``.
"""
