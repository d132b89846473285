"""Login and token issuing (refresh rotation and logout: :mod:`auth_service.auth.refresh`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from auth_service import tokens
from auth_service.auth import refresh
from auth_service.auth.errors import BadCredentials, InactiveUser
from auth_service.auth.schemas import TokenResponse
from auth_service.clock import Clock
from auth_service.keys.ring import KeyRing
from auth_service.models import User
from auth_service.passwords import PasswordHasher
from auth_service.recovery.service import refuse_unverified_login
from auth_service.settings import Settings
from auth_service.throttle import LoginThrottle
from auth_service.users import service as users
from svckit.scopes import default_scopes, format_scope


async def authenticate(
    session: AsyncSession,
    hasher: PasswordHasher,
    throttle: LoginThrottle,
    settings: Settings,
    *,
    identifier: str,
    password: str,
) -> User:
    """The user ``identifier``/``password`` belong to.

    Timing: an unknown user is verified against a dummy hash, and both failure paths make the
    same Redis call, so they cost the same. The inactive check comes only after the password
    was verified, so 403 reveals nothing to someone without the password.
    """
    await throttle.check(identifier)
    # The hashing slot first: a login waiting for one holds no database connection.
    async with hasher.slot():
        user = await users.find_for_login(session, identifier)
        verification = await hasher.verify(
            password, user.hashed_password if user is not None else None
        )
    if user is None or not verification.ok:
        await throttle.record_failure(identifier)
        raise BadCredentials()
    if not user.is_active:
        raise InactiveUser()
    refuse_unverified_login(settings, user)
    await throttle.reset(identifier)
    if verification.new_hash is not None:
        # A legacy scheme or a lower cost: store the password under the current scheme.
        user.hashed_password = verification.new_hash
        await session.flush()
    return user


async def token_response(
    keyring: KeyRing,
    settings: Settings,
    clock: Clock,
    user: User | None,
    refresh_token: str | None,
    *,
    client_id: str | None,
    scopes: frozenset[str],
    show_scope: bool,
    amr: Sequence[str] | None = None,
) -> TokenResponse:
    """Sign an access token (``user=None``: the client's own) and build the §5.1 answer.

    ``client_id`` ``None`` is the first-party public client; ``amr`` (RFC 8176) how the user
    authenticated (a user's token always has one: a password when not given).
    """
    kid, private_key = await keyring.signing_key()
    scope = format_scope(scopes)
    access = tokens.issue_access_token(
        user,
        client_id=client_id or settings.public_client_id,
        scope=scope,
        kid=kid,
        private_key=private_key,
        issuer=settings.issuer,
        audience=settings.audience,
        lifetime=settings.access_token_ttl_seconds,
        now=clock(),
        amr=(amr or refresh.PASSWORD_AMR) if user is not None else None,
    )
    return TokenResponse(
        access_token=access.token,
        expires_in=access.expires_in,
        refresh_token=refresh_token,
        scope=scope if show_scope else None,
    )


async def login(
    session: AsyncSession,
    keyring: KeyRing,
    settings: Settings,
    clock: Clock,
    user: User,
    *,
    client_id: str | None = None,
    scopes: frozenset[str] | None = None,
    show_scope: bool = False,
    amr: Sequence[str] = refresh.PASSWORD_AMR,
) -> TokenResponse:
    """Tokens for a fresh login: a new refresh token family (remembering ``amr``).

    ``scopes`` ``None``: none was asked for, so the user's default scopes, now and on every
    refresh (a promotion or demotion shows in the next refreshed token).
    """
    refresh_token = await refresh.start_family(
        session,
        user,
        now=clock(),
        lifetime=timedelta(seconds=settings.refresh_token_ttl_seconds),
        client_id=client_id,
        scope=format_scope(scopes) if scopes is not None else None,
        amr=amr,
    )
    granted = scopes if scopes is not None else default_scopes(is_admin=user.is_admin)
    return await token_response(
        keyring,
        settings,
        clock,
        user,
        refresh_token,
        client_id=client_id,
        scopes=granted,
        show_scope=show_scope,
        amr=amr,
    )
