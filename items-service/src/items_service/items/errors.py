"""Domain errors of the items resource, rendered by svckit in the shared envelope."""

from __future__ import annotations

from svckit.bearer import InvalidCredentials
from svckit.errors import ServiceError


class ItemNotFound(ServiceError):
    status_code = 404
    code = "not_found"
    detail = "Item not found"


class NotItemOwner(ServiceError):
    status_code = 403
    code = "forbidden"
    detail = "Only the item's owner or an admin may change it"


class ItemChanged(ServiceError):
    status_code = 412
    code = "precondition_failed"
    detail = "The item has changed: If-Match does not match its current ETag"


class UserDeleted(InvalidCredentials):
    """A write for a user whose deletion was already applied (the token check raced it): the
    same answer as any token that no longer names a user."""
