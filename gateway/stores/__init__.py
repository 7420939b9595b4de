"""State behind small protocols; ``memory`` is the single-process backend."""
