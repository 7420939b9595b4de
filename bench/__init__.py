"""The gateway's performance benchmark: fake upstreams, a floor proxy, load drivers and the runner.

Not a test suite: ``bench/run`` starts everything, measures what the gateway adds per request and
writes ``bench/results/latest.md``.
"""
