"""Registered OAuth2 clients as the admin API shows them (never the secret's hash)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from svckit.scopes import SCOPES

GrantType = Literal["client_credentials", "password", "refresh_token"]
GRANT_TYPES: tuple[GrantType, ...] = ("client_credentials", "password", "refresh_token")
Scope = Literal["items:read", "items:write", "items:moderate", "users:admin"]
# PostgreSQL refuses NUL in text: a 422 here, not a database error.
ClientName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[^\x00]*$"),
]

assert set(Scope.__args__) == set(SCOPES)  # type: ignore[attr-defined]


class ClientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ClientName
    grant_types: list[GrantType] = Field(min_length=1, max_length=len(GRANT_TYPES))
    scopes: list[Scope] = Field(default_factory=list, max_length=len(SCOPES))

    @field_validator("grant_types", "scopes")
    @classmethod
    def _unique_and_sorted(cls, values: list[str]) -> list[str]:
        return sorted(set(values))


class ClientRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    client_id: str
    name: str
    grant_types: list[str]
    scopes: list[str]
    created_at: datetime
    secret_rotated_at: datetime


class ClientWithSecret(ClientRead):
    """The answer to a creation or a secret rotation: the only time the secret is shown."""

    client_secret: str
