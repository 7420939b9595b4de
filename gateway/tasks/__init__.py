"""Background work: the task runner (``runner``, the lifespan owner) and its parts, one job each:
``drive`` (one task from lease to outcome), ``submit`` (a job at a provider, with fallback),
``poll`` (following the job to its end, downloads via ``outputs``), ``outcomes`` (recording how a
task ended), ``leases`` (who drives a task; take-over from a dead replica), ``cancel``, ``sweep``
(expired artifacts and old task records), ``active`` (the tasks driven here) and ``public`` (a
task as the API shows it).

May import anything in ``gateway`` but an endpoint, and ``providers``.
"""
