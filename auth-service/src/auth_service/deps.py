"""Dependencies as ``Annotated`` aliases, so endpoints declare what they need by type."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import httpx
from fastapi import Depends, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.auth.errors import AdminRequired, InactiveUser
from auth_service.clock import Clock
from auth_service.db import request_session
from auth_service.keys.ring import KeyRing
from auth_service.mfa.sealing import SecretBox
from auth_service.models import RevokedAccessToken, User
from auth_service.password_policy import PasswordPolicy
from auth_service.passwords import PasswordHasher
from auth_service.runtime import Runtime
from auth_service.settings import Settings
from auth_service.throttle import LoginThrottle
from auth_service.users.errors import UserNotFound
from svckit.bearer import Claims, InvalidCredentials, oauth2_scheme
from svckit.db import BIGINT_MAX
from svckit.scopes import USERS_ADMIN, require_scopes
from svckit.tokens import TokenVerifier


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


# What the lifespan built, one part per alias: an endpoint declares the parts it uses and hands
# them to the services, which never see the whole Runtime. ``async def`` because FastAPI runs a
# plain ``def`` dependency in its thread pool, a needless hop for an attribute read.
async def get_settings(request: Request) -> Settings:
    return _runtime(request).settings


async def get_clock(request: Request) -> Clock:
    return _runtime(request).clock


async def get_hasher(request: Request) -> PasswordHasher:
    return _runtime(request).hasher


async def get_policy(request: Request) -> PasswordPolicy:
    return _runtime(request).policy


async def get_keyring(request: Request) -> KeyRing:
    return _runtime(request).keyring


async def get_verifier(request: Request) -> TokenVerifier:
    return _runtime(request).verifier


async def get_login_throttle(request: Request) -> LoginThrottle:
    return _runtime(request).throttle


async def get_client_throttle(request: Request) -> LoginThrottle:
    return _runtime(request).client_throttle


async def get_mfa_throttle(request: Request) -> LoginThrottle:
    return _runtime(request).mfa_throttle


async def get_totp_box(request: Request) -> SecretBox:
    return _runtime(request).totp_box


async def get_http(request: Request) -> httpx.AsyncClient:
    return _runtime(request).http


async def get_wake_relay(request: Request) -> Callable[[], None]:
    return _runtime(request).wake_relay


async def get_wake_mail(request: Request) -> Callable[[], None]:
    return _runtime(request).wake_mail


SettingsDep = Annotated[Settings, Depends(get_settings)]
ClockDep = Annotated[Clock, Depends(get_clock)]
HasherDep = Annotated[PasswordHasher, Depends(get_hasher)]
PolicyDep = Annotated[PasswordPolicy, Depends(get_policy)]
KeyRingDep = Annotated[KeyRing, Depends(get_keyring)]
VerifierDep = Annotated[TokenVerifier, Depends(get_verifier)]
# Failed logins per account name, failed client authentications per client id, wrong second
# factor codes per account (auth_service.runtime builds all three from AUTH_LOGIN_THROTTLE_*).
LoginThrottleDep = Annotated[LoginThrottle, Depends(get_login_throttle)]
ClientThrottleDep = Annotated[LoginThrottle, Depends(get_client_throttle)]
MfaThrottleDep = Annotated[LoginThrottle, Depends(get_mfa_throttle)]
TotpBoxDep = Annotated[SecretBox, Depends(get_totp_box)]
HttpClientDep = Annotated[httpx.AsyncClient, Depends(get_http)]
# Background tasks for after the commit: publish the outbox now, send queued mail now.
WakeRelayDep = Annotated[Callable[[], None], Depends(get_wake_relay)]
WakeMailDep = Annotated[Callable[[], None], Depends(get_wake_mail)]
# scope="function": committed before the response is sent (see db.request_session).
SessionDep = Annotated[AsyncSession, Depends(request_session, scope="function")]
BearerToken = Annotated[str | None, Depends(oauth2_scheme)]


async def current_user(claims: Claims, session: SessionDep) -> User:
    """The user a valid access token names; 401 when that user no longer exists or the token
    was revoked, 403 for a service client's own token (it never passes for a user)."""
    user_id = claims.user_id
    user = await session.get(User, user_id) if 0 < user_id <= BIGINT_MAX else None
    if user is None:
        raise InvalidCredentials()
    if claims.token_id is not None:
        revoked = await session.get(RevokedAccessToken, claims.token_id)
        if revoked is not None:
            raise InvalidCredentials()
    if not user.is_active:
        raise InactiveUser()
    return user


CurrentUser = Annotated[User, Depends(current_user)]


async def admin_user(user: CurrentUser, claims: Claims) -> User:
    """The current user, who must be an administrator (checked in the database, not the
    token, so a demotion takes effect at once) holding a token with ``users:admin``."""
    if not user.is_admin:
        raise AdminRequired()
    require_scopes(claims.scopes, [USERS_ADMIN])
    return user


AdminUser = Annotated[User, Depends(admin_user)]
UserIdPath = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="User id")]


async def user_by_id(user_id: UserIdPath, session: SessionDep, _admin: AdminUser) -> User:
    """Load the user of the path or answer 404 (only after the caller proved to be admin)."""
    user = await session.get(User, user_id)
    if user is None:
        raise UserNotFound()
    return user


UserById = Annotated[User, Depends(user_by_id)]
