"""Background work: the task runner that submits, polls, recovers and cancels music jobs, and the
download of a finished job's output into an artifact.

May import anything in ``gateway`` but an endpoint, and ``providers``.
"""
