"""The forms of the token, revocation and introspection endpoints, and their answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Form
from pydantic import BaseModel, ConfigDict

from auth_service.clients.service import MAX_SECRET_LENGTH
from auth_service.oauth.credentials import MAX_CLIENT_ID_LENGTH
from auth_service.users.schemas import MAX_PASSWORD_CHARS
from svckit.scopes import MAX_SCOPE_LENGTH

# Fields are capped so an oversized one is a quick 422, never a slow hash.
MAX_TOKEN_FIELD = 8192


@dataclass(frozen=True, slots=True)
class TokenForm:
    """``POST /auth/token`` (RFC 6749 §4.3, §4.4, §6, and the MFA grant). Which fields are
    required depends on ``grant_type`` (``password`` when absent), so the endpoint checks."""

    grant_type: str | None = None
    username: str | None = None
    password: str | None = None
    refresh_token: str | None = None
    scope: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    # The MFA grant (auth_service.mfa.grant)
    mfa_token: str | None = None
    otp: str | None = None

    # The dependency that reads the form: a coroutine, since FastAPI would build a class
    # dependency in its thread pool, one needless hop per token request.
    @classmethod
    async def parse(
        cls,
        grant_type: Annotated[str | None, Form(max_length=64)] = None,
        username: Annotated[str | None, Form(max_length=320)] = None,
        password: Annotated[str | None, Form(max_length=MAX_PASSWORD_CHARS)] = None,
        refresh_token: Annotated[str | None, Form(max_length=MAX_TOKEN_FIELD)] = None,
        scope: Annotated[str | None, Form(max_length=MAX_SCOPE_LENGTH)] = None,
        client_id: Annotated[str | None, Form(max_length=MAX_CLIENT_ID_LENGTH)] = None,
        client_secret: Annotated[str | None, Form(max_length=MAX_SECRET_LENGTH)] = None,
        mfa_token: Annotated[str | None, Form(max_length=512)] = None,
        otp: Annotated[str | None, Form(max_length=64)] = None,
    ) -> TokenForm:
        return cls(
            grant_type=grant_type,
            username=username,
            password=password,
            refresh_token=refresh_token,
            scope=scope,
            client_id=client_id,
            client_secret=client_secret,
            mfa_token=mfa_token,
            otp=otp,
        )


@dataclass(frozen=True, slots=True)
class TokenActionForm:
    """``POST /auth/revoke`` (RFC 7009 §2.1) and ``POST /auth/introspect`` (RFC 7662 §2.1)."""

    token: str | None = None
    token_type_hint: str | None = None
    client_id: str | None = None
    client_secret: str | None = None

    # A coroutine dependency, like TokenForm.parse.
    @classmethod
    async def parse(
        cls,
        token: Annotated[str | None, Form(max_length=MAX_TOKEN_FIELD)] = None,
        token_type_hint: Annotated[str | None, Form(max_length=64)] = None,
        client_id: Annotated[str | None, Form(max_length=MAX_CLIENT_ID_LENGTH)] = None,
        client_secret: Annotated[str | None, Form(max_length=MAX_SECRET_LENGTH)] = None,
    ) -> TokenActionForm:
        return cls(
            token=token,
            token_type_hint=token_type_hint,
            client_id=client_id,
            client_secret=client_secret,
        )


class Introspection(BaseModel):
    """RFC 7662 §2.2: ``active``, and for an active token what it is and who it is for."""

    model_config = ConfigDict(extra="allow")

    active: bool
    scope: str | None = None
    client_id: str | None = None
    username: str | None = None
    token_type: str | None = None
    exp: int | None = None
    iat: int | None = None
    nbf: int | None = None
    sub: str | None = None
    aud: str | list[str] | None = None
    iss: str | None = None
    jti: str | None = None

    def body(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)
