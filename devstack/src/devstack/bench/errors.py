"""What can stop a benchmark run, as messages a person can act on."""

from __future__ import annotations

from devstack.errors import StackError


class BenchError(StackError):
    """The benchmark could not run (missing load generator, failed seeding, ...)."""
