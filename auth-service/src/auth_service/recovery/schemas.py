from __future__ import annotations

from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from auth_service.recovery.tokens import MAX_TOKEN_LENGTH
from auth_service.users.schemas import Password

TokenStr = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TOKEN_LENGTH)]
# Not validated as an address: a malformed one is simply an account that does not exist.
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=320, pattern=r"^[^\x00]*$")]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PasswordResetRequest(_Input):
    """The account by ``email`` or by ``username`` (one of them)."""

    email: Identifier | None = Field(default=None, examples=["alice@example.com"])
    username: Identifier | None = Field(default=None, examples=["alice"])

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if self.email is None and self.username is None:
            raise ValueError("give the account's email or username")
        return self

    @property
    def identifier(self) -> str:
        value = self.email if self.email is not None else self.username
        assert value is not None
        return value


class PasswordResetConfirm(_Input):
    token: TokenStr
    new_password: Password


class VerifyEmailRequest(_Input):
    token: TokenStr
