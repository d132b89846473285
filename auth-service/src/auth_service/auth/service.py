"""Login, token issuing, refresh and logout."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from auth_service import refresh, tokens
from auth_service.auth.schemas import TokenResponse
from auth_service.deps import InactiveUser
from auth_service.models import User
from auth_service.recovery.service import refuse_unverified_login
from auth_service.runtime import Runtime
from auth_service.users import service as users
from svckit.errors import ServiceError


class BadCredentials(ServiceError):
    """One answer for an unknown user and a wrong password: status, body and headers."""

    status_code = 401
    code = "invalid_credentials"
    detail = "Incorrect username or password"

    def __init__(self) -> None:
        super().__init__(headers={"WWW-Authenticate": "Bearer"})


async def authenticate(
    session: AsyncSession, runtime: Runtime, *, identifier: str, password: str
) -> User:
    """The user ``identifier``/``password`` belong to.

    Timing: an unknown user is verified against a dummy hash, and both failure paths make the
    same Redis call, so they cost the same. The inactive check comes only after the password
    was verified, so 403 reveals nothing to someone without the password.
    """
    throttle = runtime.throttle
    await throttle.check(identifier)
    # The hashing slot first: a login waiting for one holds no database connection.
    async with runtime.hasher.slot():
        user = await users.find_for_login(session, identifier)
        verification = await runtime.hasher.verify(
            password, user.hashed_password if user is not None else None
        )
    if user is None or not verification.ok:
        await throttle.record_failure(identifier)
        raise BadCredentials()
    if not user.is_active:
        raise InactiveUser()
    refuse_unverified_login(runtime.settings, user)
    await throttle.reset(identifier)
    if verification.new_hash is not None:
        # A legacy scheme or a lower cost: store the password under the current scheme.
        user.hashed_password = verification.new_hash
        await session.flush()
    return user


async def _token_response(runtime: Runtime, user: User, refresh_token: str) -> TokenResponse:
    settings = runtime.settings
    kid, private_key = await runtime.keyring.signing_key()
    access = tokens.issue_access_token(
        user,
        kid=kid,
        private_key=private_key,
        issuer=settings.issuer,
        audience=settings.audience,
        lifetime=settings.access_token_ttl_seconds,
        now=runtime.clock(),
    )
    return TokenResponse(
        access_token=access.token, expires_in=access.expires_in, refresh_token=refresh_token
    )


async def login(session: AsyncSession, runtime: Runtime, user: User) -> TokenResponse:
    """Tokens for a fresh login: a new refresh token family."""
    refresh_token = await refresh.start_family(
        session,
        user,
        now=runtime.clock(),
        lifetime=timedelta(seconds=runtime.settings.refresh_token_ttl_seconds),
    )
    return await _token_response(runtime, user, refresh_token)


async def refresh_tokens(session: AsyncSession, runtime: Runtime, token: str) -> TokenResponse:
    rotation = await refresh.rotate(session, token, now=runtime.clock())
    return await _token_response(runtime, rotation.user, rotation.refresh_token)


async def logout(session: AsyncSession, runtime: Runtime, user: User, token: str) -> None:
    await refresh.revoke_token_family(session, token, user_id=user.id, now=runtime.clock())
