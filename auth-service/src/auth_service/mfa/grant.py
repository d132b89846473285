"""Two-step sign-in on the token endpoint.

1. The password grant of a user with an active TOTP factor answers 401 ``mfa_required``
   with an ``mfa_token`` (see :class:`~auth_service.mfa.errors.MfaRequired`).
2. The MFA grant, ``grant_type`` = :data:`MFA_OTP_GRANT`, with form fields ``mfa_token``
   and ``otp`` (a TOTP code or a recovery code), from the same client, answers the tokens
   the password grant would have (RFC 6749 §5.1), with ``amr`` ``["pwd", "otp", "mfa"]``.

The grant type is an extension grant (RFC 6749 §4.5, an absolute URI) in the form hosted
identity providers give theirs (e.g. ``http://auth0.com/oauth/grant-type/mfa-otp``), as a URN
of this service's own informal namespace: it identifies this service's grant and promises
nothing about anyone else's. A wrong, replayed or expired code is ``invalid_grant`` and
counts toward the account's throttle of wrong codes; when that is exhausted the MFA grant and
the password grant of the account answer 429 for the lockout.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.auth import service as auth
from auth_service.auth.schemas import TokenResponse
from auth_service.clock import Clock
from auth_service.keys.ring import KeyRing
from auth_service.mfa import service
from auth_service.mfa.errors import MfaRequired
from auth_service.mfa.sealing import SecretBox
from auth_service.models import OAuthClient, User
from auth_service.oauth.errors import InvalidGrant
from auth_service.settings import Settings
from auth_service.throttle import LoginThrottle
from svckit.scopes import default_scopes, format_scope, parse_scope

MFA_OTP_GRANT = "urn:auth-service:params:oauth:grant-type:mfa-otp"

_BAD_TOKEN = "The mfa_token is invalid, expired or was already used"  # noqa: S105
_BAD_OTP = "The one-time password is wrong, expired or was already used"


async def require_second_factor(
    session: AsyncSession,
    mfa_throttle: LoginThrottle,
    settings: Settings,
    clock: Clock,
    user: User,
    *,
    client_id: str | None,
    scopes: frozenset[str] | None,
    show_scope: bool,
) -> None:
    """After a right password: raise :class:`MfaRequired` if ``user`` has an active factor."""
    if not await service.is_enabled(session, user.id):
        return
    # A locked-out account gets no new mfa_token to guess with.
    await mfa_throttle.check(service.throttle_key(user.id))
    ttl = settings.mfa_token_ttl_seconds
    now = clock()
    token = await service.start_challenge(
        session,
        user,
        client_id=client_id,
        scope=format_scope(scopes) if scopes is not None else None,
        show_scope=show_scope,
        now=now,
        lifetime=timedelta(seconds=ttl),
    )
    raise MfaRequired(token, grant_type=MFA_OTP_GRANT, expires_in=ttl)


async def complete(
    session: AsyncSession,
    client: OAuthClient | None,
    *,
    mfa_token: str,
    otp: str,
    mfa_throttle: LoginThrottle,
    totp_box: SecretBox,
    keyring: KeyRing,
    settings: Settings,
    clock: Clock,
) -> TokenResponse:
    """The MFA grant: check ``otp`` for the login ``mfa_token`` continues; its tokens."""
    now = clock()
    found = await service.find_challenge(session, mfa_token, now=now)
    client_id = client.client_id if client is not None else None
    if found is None:
        raise InvalidGrant(_BAD_TOKEN)
    challenge, user = found
    factor = await service.factor_of(session, user.id)
    if (
        challenge.client_id != client_id
        or not user.is_active
        or factor is None
        or factor.confirmed_at is None
    ):
        raise InvalidGrant(_BAD_TOKEN)
    key = service.throttle_key(user.id)
    await mfa_throttle.check(key)
    if not await service.verify_otp(session, totp_box, factor, otp, now=now):
        await mfa_throttle.record_failure(key)
        raise InvalidGrant(_BAD_OTP)
    await mfa_throttle.reset(key)
    await service.finish_challenge(session, challenge)
    scopes = None
    if challenge.scope is not None:
        # What the login was granted, less what the user may no longer have.
        scopes = parse_scope(challenge.scope) & default_scopes(is_admin=user.is_admin)
    return await auth.login(
        session,
        keyring,
        settings,
        clock,
        user,
        client_id=client_id,
        scopes=scopes,
        show_scope=challenge.show_scope,
        amr=service.AMR_MFA,
    )
