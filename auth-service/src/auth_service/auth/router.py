"""``/auth``: registration, refresh, logout, the caller (the token endpoint: ``oauth``)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from auth_service.auth import refresh as refresh_tokens
from auth_service.auth import service
from auth_service.auth.schemas import LogoutRequest, RefreshRequest, TokenResponse
from auth_service.deps import (
    ClockDep,
    CurrentUser,
    HasherDep,
    KeyRingDep,
    PolicyDep,
    SessionDep,
    SettingsDep,
)
from auth_service.recovery import service as recovery
from auth_service.responses import AUTHENTICATED, error_responses
from auth_service.users import service as users
from auth_service.users.schemas import UserCreate, UserRead
from svckit.schemas import Message

router = APIRouter(prefix="/auth", tags=["auth"])

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _no_store(response: Response) -> None:
    response.headers.update(_NO_STORE)


@router.post(
    "/register",
    response_model=UserRead,
    summary="Create an account",
    responses=error_responses(
        400, 422, 503, s400="`username_taken`, `email_taken`, or a malformed body"
    ),
)
async def register(
    body: UserCreate,
    session: SessionDep,
    hasher: HasherDep,
    policy: PolicyDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> UserRead:
    user = await users.register_user(
        session,
        hasher,
        policy,
        username=body.username,
        email=body.email,
        password=body.password,
        full_name=body.full_name,
        now=clock(),
    )
    await recovery.send_verification(session, settings, user, user.email, now=user.created_at)
    return UserRead.model_validate(user)


@router.post(
    "/refresh",
    response_model=TokenResponse,
    response_model_exclude_none=True,
    summary="Exchange a refresh token",
    responses=error_responses(
        400, 401, 422, 503, s401="Unknown, expired, revoked or reused refresh token"
    ),
)
async def refresh(
    body: RefreshRequest,
    session: SessionDep,
    keyring: KeyRingDep,
    settings: SettingsDep,
    clock: ClockDep,
    response: Response,
) -> TokenResponse:
    rotation = await refresh_tokens.rotate(session, body.refresh_token, now=clock())
    # The first-party client's refresh, in the seed's answer shape (no ``scope``).
    result = await service.token_response(
        keyring,
        settings,
        clock,
        rotation.user,
        rotation.refresh_token,
        client_id=None,
        scopes=refresh_tokens.family_scopes(rotation.user, rotation.scope),
        show_scope=False,
        amr=rotation.amr,
    )
    _no_store(response)
    return result


@router.post(
    "/logout",
    response_model=Message,
    summary="Revoke a refresh token's family",
    responses=error_responses(400, 422, *AUTHENTICATED),
)
async def logout(
    body: LogoutRequest, user: CurrentUser, session: SessionDep, clock: ClockDep
) -> Message:
    await refresh_tokens.revoke_token_family(
        session, body.refresh_token, user_id=user.id, now=clock()
    )
    return Message(message="Logged out")


@router.get(
    "/me",
    response_model=UserRead,
    summary="The caller",
    responses=error_responses(*AUTHENTICATED),
)
async def me(user: CurrentUser) -> UserRead:
    return UserRead.model_validate(user)
