"""What can go wrong when starting the stack, as messages a person can act on."""

from __future__ import annotations


class StackError(RuntimeError):
    """The stack could not be started or controlled; the message says why and what to do."""


class PortInUse(StackError):
    """A port the stack needs is already taken."""


class BinaryMissing(StackError):
    """An executable the stack needs (traefik, redis-server, uvicorn, a service CLI) is missing."""


class ComponentFailed(StackError):
    """A component exited or did not become ready in time."""
