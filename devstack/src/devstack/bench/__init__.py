"""``devstack bench`` (``make bench``): the real stack under load from wrk, through the gateway.

Writes ``docs/benchmarks.md`` and ``docs/benchmarks.json``; ``--smoke`` is a seconds-long run
for CI that writes its JSON into its data folder instead (``.data/bench-smoke/``).
"""
