"""Dependencies as ``Annotated`` aliases, so endpoints declare what they need by type."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.auth.errors import AdminRequired, InactiveUser
from auth_service.db import request_session
from auth_service.models import RevokedAccessToken, User
from auth_service.runtime import Runtime
from auth_service.users.errors import UserNotFound
from svckit.bearer import Claims, InvalidCredentials, oauth2_scheme
from svckit.db import BIGINT_MAX
from svckit.scopes import USERS_ADMIN, require_scopes


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
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
