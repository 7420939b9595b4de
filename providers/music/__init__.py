"""Music adapters and their contract: fal.ai, Replicate, Stability and the offline ``local`` one,
each with its pure wire translation beside it.

May import: ``providers`` (base, scrub), ``providers.http``, ``providers.synth``. Never
``gateway``.
"""
