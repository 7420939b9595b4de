"""Artifacts: stored files (uploads and generated audio) with their owner-checked records, and
recognising media by its bytes.

May import: ``gateway.contract``, ``gateway.config``, ``gateway.stores``, ``gateway.logs``.
"""
