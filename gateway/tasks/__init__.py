"""Background work: music jobs as tasks.

``runner`` owns them in the application's lifespan (launch, leases and recovery, cancel,
shutdown, the sweep); ``submit`` hands a job to a provider, ``poll`` follows it to its end and
stores its outputs (via ``outputs``), ``outcomes`` records how a task ended, ``active`` is what
the runner knows of a task it drives, ``public`` what the API shows of one.

May import anything in ``gateway`` but an endpoint, and ``providers``.
"""
