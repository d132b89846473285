"""Runs the whole stack as local processes: PostgreSQL, Redis, both services and Traefik.

Used by ``make run`` (``devstack run``), the end-to-end suite and the benchmarks.
"""

from devstack.config import StackConfig
from devstack.errors import BinaryMissing, ComponentFailed, PortInUse, StackError
from devstack.stack import Stack

__all__ = ["BinaryMissing", "ComponentFailed", "PortInUse", "Stack", "StackConfig", "StackError"]
