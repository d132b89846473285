"""Response bodies both services declare in their OpenAPI documents.

svckit.errors renders every error at run time; :class:`ErrorEnvelope` only describes that body,
so each route's schema can list every status it answers.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorEnvelope(BaseModel):
    """The shared error body (svckit.errors); 422 adds ``errors`` (and ``detail`` is that list)."""

    detail: Any
    code: str
    status_code: int
    path: str
    request_id: str | None
    errors: list[dict[str, Any]] | None = None


class Message(BaseModel):
    """A plain confirmation, e.g. ``{"message": "Item deleted successfully"}``."""

    message: str
