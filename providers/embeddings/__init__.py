"""Embeddings: the adapter protocol and the wire helpers every embeddings adapter shares
(``base``), and the offline hashed n-gram model of the ``local`` provider (``hashed``).

May import: ``providers`` (base, tokens). Never ``gateway``, ``providers.chat``,
``providers.music``, ``providers.synth`` or ``providers.http``: the chat adapters that also
serve embeddings import this package, not the other way round.
"""
