"""``/users``: the caller's own account, and administration of every account."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Response
from fastapi.exceptions import RequestValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service import items_client
from auth_service.deps import (
    AdminUser,
    BearerToken,
    ClockDep,
    CurrentUser,
    HasherDep,
    HttpClientDep,
    PolicyDep,
    SessionDep,
    SettingsDep,
    UserById,
    WakeMailDep,
    WakeRelayDep,
)
from auth_service.models import User
from auth_service.recovery import service as recovery
from auth_service.responses import AUTHENTICATED, error_responses
from auth_service.settings import Settings
from auth_service.users import service
from auth_service.users.errors import IncorrectPassword
from auth_service.users.schemas import (
    UserRead,
    UserUpdateAdmin,
    UserUpdateMe,
    UserWithItems,
    changes,
)
from svckit.schemas import Message

router = APIRouter(prefix="/users", tags=["users"])


async def _apply_changes(
    session: AsyncSession,
    settings: Settings,
    user: User,
    values: dict[str, object],
    *,
    now: datetime,
) -> bool:
    """Update ``user``; a new email is only used once confirmed (a link goes to it, a notice
    to the old address). Returns whether mail was queued."""
    new_email = values.pop("email", None)
    if values:
        await service.update_user(session, user, values, now=now)
    if isinstance(new_email, str) and new_email != user.email:
        await recovery.request_email_change(session, settings, user, new_email, now=now)
        return True
    return False


@router.get(
    "/me",
    response_model=UserWithItems,
    summary="The caller, with their items",
    responses=error_responses(*AUTHENTICATED),
)
async def read_me(
    user: CurrentUser, settings: SettingsDep, http: HttpClientDep, token: BearerToken
) -> UserWithItems:
    items = await items_client.fetch_my_items(
        http,
        base_url=settings.items_url,
        token=token or "",
        timeout=settings.items_timeout_seconds,
    )
    return UserWithItems(**UserRead.model_validate(user).model_dump(), items=items)


@router.put(
    "/me",
    response_model=UserRead,
    summary="Update the caller (partial)",
    responses=error_responses(
        400,
        422,
        *AUTHENTICATED,
        s400="`incorrect_password`, `email_taken`, or a malformed body",
    ),
)
async def update_me(
    body: UserUpdateMe,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    hasher: HasherDep,
    policy: PolicyDep,
    clock: ClockDep,
    wake_mail: WakeMailDep,
    background: BackgroundTasks,
) -> UserRead:
    now = clock()
    if body.password is not None:
        if body.current_password is None:
            raise RequestValidationError(
                [
                    {
                        "loc": ("body", "current_password"),
                        "msg": "current_password is required to change the password",
                        "type": "missing",
                    }
                ]
            )
        policy.check(body.password, username=user.username)
        verification = await hasher.verify(body.current_password, user.hashed_password)
        if not verification.ok:
            raise IncorrectPassword()
        new_hash = await hasher.hash(body.password)
        await service.set_password(session, user, new_hash, now=now)
    values = changes(body, "password", "current_password")
    if await _apply_changes(session, settings, user, values, now=now):
        background.add_task(wake_mail)
    return UserRead.model_validate(user)


@router.delete(
    "/me",
    response_model=Message,
    summary="Delete the caller's account",
    responses=error_responses(409, *AUTHENTICATED),
)
async def delete_me(
    user: CurrentUser,
    session: SessionDep,
    clock: ClockDep,
    wake_relay: WakeRelayDep,
    background: BackgroundTasks,
) -> Message:
    await service.delete_user(session, user, now=clock())
    # Background tasks run after the response, hence after the commit.
    background.add_task(wake_relay)
    return Message(message="User deleted")


@router.get(
    "/",
    response_model=list[UserRead],
    summary="List users (admin)",
    responses=error_responses(422, *AUTHENTICATED),
)
async def list_users(
    _admin: AdminUser,
    session: SessionDep,
    response: Response,
    skip: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 100,
) -> list[UserRead]:
    users, total = await service.list_users(session, skip=skip, limit=limit)
    response.headers["X-Total-Count"] = str(total)
    return [UserRead.model_validate(u) for u in users]


@router.get(
    "/{user_id}",
    response_model=UserRead,
    summary="Read a user (admin)",
    responses=error_responses(404, 422, *AUTHENTICATED),
)
async def read_user(user: UserById) -> UserRead:
    return UserRead.model_validate(user)


@router.patch(
    "/{user_id}",
    response_model=UserRead,
    summary="Update a user (admin)",
    responses=error_responses(
        400, 404, 409, 422, *AUTHENTICATED, s400="`email_taken`, or a malformed body"
    ),
)
async def update_user(
    body: UserUpdateAdmin,
    user: UserById,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    wake_mail: WakeMailDep,
    background: BackgroundTasks,
) -> UserRead:
    if await _apply_changes(session, settings, user, changes(body), now=clock()):
        background.add_task(wake_mail)
    return UserRead.model_validate(user)


@router.delete(
    "/{user_id}",
    response_model=Message,
    summary="Delete a user (admin)",
    responses=error_responses(404, 409, 422, *AUTHENTICATED),
)
async def delete_user(
    user: UserById,
    session: SessionDep,
    clock: ClockDep,
    wake_relay: WakeRelayDep,
    background: BackgroundTasks,
) -> Message:
    await service.delete_user(session, user, now=clock())
    background.add_task(wake_relay)
    return Message(message="User deleted")
