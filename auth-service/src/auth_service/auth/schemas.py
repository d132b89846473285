from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Form
from pydantic import BaseModel, ConfigDict, StringConstraints

from auth_service.refresh import MAX_TOKEN_LENGTH
from auth_service.users.schemas import MAX_PASSWORD_CHARS

RefreshTokenStr = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TOKEN_LENGTH)]


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (a token type, not a secret)
    expires_in: int
    refresh_token: str


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: RefreshTokenStr


class LogoutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: RefreshTokenStr


class PasswordForm:
    """The OAuth2 password grant form (RFC 6749 §4.3): ``username`` is a username or an email.

    Sizes are capped so an oversized field is a quick 422, never a slow hash.
    """

    def __init__(
        self,
        username: Annotated[str, Form(min_length=1, max_length=320)],
        password: Annotated[str, Form(min_length=1, max_length=MAX_PASSWORD_CHARS)],
        grant_type: Annotated[str | None, Form(pattern="^password$")] = None,
        scope: Annotated[str, Form(max_length=1024)] = "",
        client_id: Annotated[str | None, Form(max_length=256)] = None,
        client_secret: Annotated[str | None, Form(max_length=256)] = None,
    ) -> None:
        self.username = username
        self.password = password
        self.grant_type = grant_type
        self.scope = scope
        self.client_id = client_id
        self.client_secret = client_secret
