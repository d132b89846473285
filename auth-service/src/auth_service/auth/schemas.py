from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints

from auth_service.auth.refresh import MAX_TOKEN_LENGTH

RefreshTokenStr = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TOKEN_LENGTH)]


class TokenResponse(BaseModel):
    """RFC 6749 §5.1. ``refresh_token`` is absent for client credentials (§4.4.3); ``scope``
    whenever the request used the standard form (a ``grant_type`` or a ``scope``)."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (a token type, not a secret)
    expires_in: int
    refresh_token: str | None = None
    scope: str | None = None


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: RefreshTokenStr


class LogoutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: RefreshTokenStr
