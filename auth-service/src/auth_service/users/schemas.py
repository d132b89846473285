"""User schemas. Usernames ``^[A-Za-z0-9_]{3,32}$``; emails validated and lower-cased;
passwords capped at 1024 characters so an oversized body is refused before any hashing."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    model_validator,
)

from auth_service.items_client import Item

USERNAME_PATTERN = r"^[A-Za-z0-9_]{3,32}$"
MAX_PASSWORD_CHARS = 1024

Username = Annotated[
    str,
    StringConstraints(pattern=USERNAME_PATTERN),
    Field(examples=["alice"], description="3-32 letters, digits or underscores"),
]
Email = Annotated[
    EmailStr,
    Field(max_length=254, examples=["alice@example.com"]),
    AfterValidator(lambda value: value.lower()),
]
Password = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_PASSWORD_CHARS),
    Field(description="Checked against the password policy; never truncated"),
]
# PostgreSQL text cannot hold NUL; refuse it here (422) rather than fail in the database.
FullName = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=255, pattern=r"^[^\x00]*$")
]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _reject_nulls(model: BaseModel, *fields: str) -> None:
    for name in fields:
        if name in model.model_fields_set and getattr(model, name) is None:
            raise ValueError(f"{name} may not be null")


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    email: str
    email_verified: bool
    full_name: str | None
    is_active: bool
    is_admin: bool
    created_at: datetime


class UserWithItems(UserRead):
    items: list[Item] | None = Field(
        description="The user's items from items-service; null when it could not answer in time"
    )


class UserCreate(_Input):
    username: Username
    email: Email
    password: Password
    full_name: FullName | None = None


class UserUpdateMe(_Input):
    """Partial update of the caller; a new ``password`` requires ``current_password``."""

    email: Email | None = None
    full_name: FullName | None = None
    password: Password | None = None
    current_password: Password | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        _reject_nulls(self, "email", "password")
        return self


class UserUpdateAdmin(_Input):
    is_active: bool | None = None
    is_admin: bool | None = None
    email: Email | None = None
    full_name: FullName | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        _reject_nulls(self, "is_active", "is_admin", "email")
        return self


def changes(model: BaseModel, *exclude: str) -> dict[str, Any]:
    """The fields the client actually sent."""
    return {k: v for k, v in model.model_dump(exclude_unset=True).items() if k not in exclude}
