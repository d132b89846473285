"""The OAuth2 token endpoint's grants, revocation (RFC 7009) and introspection (RFC 7662).

Clients: a request either authenticates a registered confidential client
(``client_secret_basic`` or ``client_secret_post``) or is the first-party public client
(``client_id`` absent or equal to ``AUTH_PUBLIC_CLIENT_ID``). The public client may use the
``password`` and ``refresh_token`` grants; a registered client the grants it was registered
with.

Scopes (RFC 6749 §3.3): unknown or malformed scopes are ``invalid_scope``; known ones are
granted as far as the user (its default scopes, :func:`svckit.scopes.default_scopes`) and the
client (its registered scopes) may have them; nothing grantable is ``invalid_scope``. No
``scope`` asked for grants everything allowed.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service import outbox
from auth_service.auth import refresh
from auth_service.auth import service as auth
from auth_service.auth.errors import InvalidRefreshToken, RefreshTokenReused
from auth_service.auth.schemas import TokenResponse
from auth_service.clients import service as clients
from auth_service.clock import Clock
from auth_service.db import KeepWritesError
from auth_service.keys.ring import KeyRing
from auth_service.mfa import grant as mfa
from auth_service.mfa.sealing import SecretBox
from auth_service.models import OAuthClient, RevokedAccessToken, User
from auth_service.oauth.credentials import PresentedClient
from auth_service.oauth.errors import (
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from auth_service.oauth.schemas import Introspection, TokenForm
from auth_service.passwords import PasswordHasher
from auth_service.settings import Settings
from auth_service.throttle import LoginThrottle
from svckit.scopes import SCOPES, InvalidScopeSyntax, default_scopes, format_scope, parse_scope
from svckit.tokens import AccessClaims, InvalidToken, TokenVerifier

PASSWORD = "password"  # noqa: S105 (a grant type)
REFRESH_TOKEN = "refresh_token"  # noqa: S105
CLIENT_CREDENTIALS = "client_credentials"
MFA_OTP = mfa.MFA_OTP_GRANT  # the second step of a password login (auth_service.mfa.grant)
GRANT_TYPES = (PASSWORD, REFRESH_TOKEN, CLIENT_CREDENTIALS, MFA_OTP)
PUBLIC_CLIENT_GRANTS = frozenset({PASSWORD, REFRESH_TOKEN, MFA_OTP})
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")
ACCESS_TOKEN_HINT = "access_token"  # noqa: S105


# Authlib's OAuth2Client created without a client_id sends ``client_id=None`` (it formats the
# missing value); that is a client naming none. No registered client id can be "None".
_UNNAMED = (None, "None")


async def resolve_client(
    session: AsyncSession,
    hasher: PasswordHasher,
    client_throttle: LoginThrottle,
    settings: Settings,
    presented: PresentedClient,
) -> OAuthClient | None:
    """The authenticated registered client, or ``None`` for the first-party public client."""
    if presented.credentials is not None:
        return await clients.authenticate(session, hasher, client_throttle, presented.credentials)
    named = presented.public_client_id
    if named not in _UNNAMED and named != settings.public_client_id:
        # A registered client that did not authenticate, or an unknown one: alike.
        raise InvalidClient()
    return None


def requested_scopes(scope: str | None) -> frozenset[str] | None:
    """The scopes a request asks for (``None``: it asks for none)."""
    if scope is None or not scope.strip():
        return None
    try:
        parsed = parse_scope(scope)
    except InvalidScopeSyntax as exc:
        raise InvalidScope(str(exc)) from None
    unknown = parsed - SCOPES.keys()
    if unknown:
        raise InvalidScope(f"Unknown scope: {format_scope(unknown)}")
    return parsed


def _grant(requested: frozenset[str] | None, allowed: frozenset[str]) -> frozenset[str]:
    if requested is None:
        return allowed
    granted = requested & allowed
    if not granted:
        raise InvalidScope("None of the requested scopes may be granted")
    return granted


def _check_grant_allowed(client: OAuthClient | None, grant_type: str) -> None:
    allowed = PUBLIC_CLIENT_GRANTS if client is None else frozenset(client.grant_types)
    if grant_type == MFA_OTP and PASSWORD in allowed:
        return  # it finishes a password login
    if grant_type not in allowed:
        raise UnauthorizedClient(f"This client may not use the {grant_type} grant")


def _missing(*names: str) -> InvalidRequest:
    """422 like any malformed form (the seed's answer), with the §5.2 members besides."""
    errors = [{"loc": ["body", n], "msg": "Field required", "type": "missing"} for n in names]
    return InvalidRequest(
        f"Missing form field(s): {', '.join(names)}", status_code=422, extra={"errors": errors}
    )


async def issue(
    session: AsyncSession,
    form: TokenForm,
    presented: PresentedClient,
    *,
    settings: Settings,
    clock: Clock,
    hasher: PasswordHasher,
    keyring: KeyRing,
    throttle: LoginThrottle,
    client_throttle: LoginThrottle,
    mfa_throttle: LoginThrottle,
    totp_box: SecretBox,
) -> TokenResponse:
    """Dispatch on ``grant_type`` (``password`` when absent, as the seed's clients send).

    ``throttle`` counts failed logins per account, ``client_throttle`` failed client
    authentications, ``mfa_throttle`` wrong second-factor codes.
    """
    grant_type = form.grant_type if form.grant_type is not None else PASSWORD
    if grant_type not in GRANT_TYPES:
        raise UnsupportedGrantType()
    if grant_type == PASSWORD:
        missing = [n for n in ("username", "password") if not getattr(form, n)]
        if missing:
            raise _missing(*missing)
    elif grant_type == REFRESH_TOKEN and not form.refresh_token:
        raise InvalidRequest("Missing form field: refresh_token")
    elif grant_type == MFA_OTP:
        missing = [n for n in ("mfa_token", "otp") if not getattr(form, n)]
        if missing:
            raise InvalidRequest(f"Missing form field(s): {', '.join(missing)}")
    requested = requested_scopes(form.scope)
    client = await resolve_client(session, hasher, client_throttle, settings, presented)
    if grant_type == CLIENT_CREDENTIALS and client is None:
        raise InvalidClient()
    _check_grant_allowed(client, grant_type)
    # The standard form (what OAuth2 libraries send) gets ``scope`` in the answer; the
    # seed's form (no grant_type, no scope) keeps the seed's answer.
    show_scope = form.grant_type is not None or requested is not None
    if grant_type == PASSWORD:
        assert form.username is not None
        assert form.password is not None
        return await _password(
            session,
            client,
            form.username,
            form.password,
            requested,
            show_scope,
            hasher=hasher,
            throttle=throttle,
            mfa_throttle=mfa_throttle,
            keyring=keyring,
            settings=settings,
            clock=clock,
        )
    if grant_type == REFRESH_TOKEN:
        assert form.refresh_token is not None
        return await _refresh(
            session, keyring, settings, clock, client, form.refresh_token, requested
        )
    if grant_type == MFA_OTP:
        assert form.mfa_token is not None
        assert form.otp is not None
        return await mfa.complete(
            session,
            client,
            mfa_token=form.mfa_token,
            otp=form.otp,
            mfa_throttle=mfa_throttle,
            totp_box=totp_box,
            keyring=keyring,
            settings=settings,
            clock=clock,
        )
    assert client is not None
    scopes = _grant(requested, frozenset(client.scopes))
    return await auth.token_response(
        keyring,
        settings,
        clock,
        None,
        None,
        client_id=client.client_id,
        scopes=scopes,
        show_scope=True,
    )


async def _password(
    session: AsyncSession,
    client: OAuthClient | None,
    username: str,
    password: str,
    requested: frozenset[str] | None,
    show_scope: bool,
    *,
    hasher: PasswordHasher,
    throttle: LoginThrottle,
    mfa_throttle: LoginThrottle,
    keyring: KeyRing,
    settings: Settings,
    clock: Clock,
) -> TokenResponse:
    user = await auth.authenticate(
        session, hasher, throttle, settings, identifier=username, password=password
    )
    allowed = default_scopes(is_admin=user.is_admin)
    if client is not None:
        allowed &= frozenset(client.scopes)
    scopes = _grant(requested, allowed) if requested is not None or client is not None else None
    client_id = client.client_id if client is not None else None
    await mfa.require_second_factor(
        session,
        mfa_throttle,
        settings,
        clock,
        user,
        client_id=client_id,
        scopes=scopes,
        show_scope=show_scope,
    )
    return await auth.login(
        session,
        keyring,
        settings,
        clock,
        user,
        client_id=client_id,
        scopes=scopes,
        show_scope=show_scope,
    )


_BAD_REFRESH = "The refresh token is invalid, expired, revoked or was used"


async def _refresh(
    session: AsyncSession,
    keyring: KeyRing,
    settings: Settings,
    clock: Clock,
    client: OAuthClient | None,
    token: str,
    requested: frozenset[str] | None,
) -> TokenResponse:
    client_id = client.client_id if client is not None else None
    try:
        rotation = await refresh.rotate(session, token, now=clock(), client_id=client_id)
    except RefreshTokenReused as exc:
        # RFC 6749 §5.2: invalid_grant is a 400 here (only /auth/refresh keeps the seed's 401);
        # still a KeepWritesError, so the family's revocation is committed.
        raise KeepWritesError(
            _BAD_REFRESH, status_code=400, code="invalid_grant", extra=exc.extra
        ) from None
    except InvalidRefreshToken:
        raise InvalidGrant(_BAD_REFRESH) from None
    allowed = refresh.family_scopes(rotation.user, rotation.scope)
    if client is not None:
        allowed &= frozenset(client.scopes)
    # RFC 6749 §6: a refresh may narrow the scope, never widen it (the rotation rolls back).
    if requested is not None and not requested <= allowed:
        raise InvalidScope("A refresh may not ask for more than the login was granted")
    scopes = requested if requested is not None else allowed
    return await auth.token_response(
        keyring,
        settings,
        clock,
        rotation.user,
        rotation.refresh_token,
        client_id=client_id,
        scopes=scopes,
        show_scope=True,
        amr=rotation.amr,
    )


# --------------------------------------------------------------------- revocation


async def _access_claims(verifier: TokenVerifier, token: str) -> AccessClaims | None:
    if token.count(".") != 2:
        return None
    try:
        return await verifier.verify(token)
    except InvalidToken:
        return None


def _token_client(settings: Settings, client_id: str | None) -> str | None:
    """A token's registered client (``None``: the first-party public client)."""
    if client_id is None or client_id == settings.public_client_id:
        return None
    return client_id


def _check_issued_to(token_client: str | None, caller: OAuthClient | None) -> None:
    """RFC 7009 §2.1 / RFC 7662 §2.1: a registered client's token is only its own business."""
    caller_id = caller.client_id if caller is not None else None
    if token_client != caller_id:
        raise UnauthorizedClient("The token was issued to another client")


async def revoke_access_token(
    session: AsyncSession, claims: AccessClaims, *, now: datetime
) -> bool:
    """Record the token's ``jti`` as revoked and tell items-service (outbox event).

    Returns whether it was newly revoked (an event was written).
    """
    if claims.token_id is None:
        return False
    expires_at = datetime.fromtimestamp(claims.expires_at, UTC)
    inserted = await session.scalar(
        insert(RevokedAccessToken)
        .values(jti=claims.token_id, expires_at=expires_at, revoked_at=now)
        .on_conflict_do_nothing(index_elements=["jti"])
        .returning(RevokedAccessToken.jti)
    )
    if inserted is None:
        return False
    await outbox.add_token_revoked(session, claims.token_id, expires_at=expires_at, now=now)
    return True


async def revoke(
    session: AsyncSession,
    verifier: TokenVerifier,
    settings: Settings,
    *,
    token: str,
    hint: str | None,
    caller: OAuthClient | None,
    now: datetime,
) -> bool:
    """Revoke ``token`` (a refresh token: its whole family). Unknown, invalid or expired
    tokens are no error (RFC 7009 §2.2). Returns whether an outbox event was written."""
    looks_like_jwt = token.count(".") == 2
    for kind in (
        ("access", "refresh")
        if hint == ACCESS_TOKEN_HINT or looks_like_jwt
        else (
            "refresh",
            "access",
        )
    ):
        if kind == "refresh":
            state = await refresh.find(session, token)
            if state is not None:
                _check_issued_to(state.family.client_id, caller)
                await refresh.revoke_family(session, state.family.id, now=now, reason="revoked")
                return False
        else:
            claims = await _access_claims(verifier, token)
            if claims is not None:
                _check_issued_to(_token_client(settings, claims.client_id), caller)
                return await revoke_access_token(session, claims, now=now)
    return False


# --------------------------------------------------------------------- introspection


async def introspect(
    session: AsyncSession,
    verifier: TokenVerifier,
    settings: Settings,
    *,
    token: str,
    caller: OAuthClient,
    now: datetime,
) -> Introspection:
    """RFC 7662: any registered client may introspect access tokens (it is a resource server);
    a refresh token only by the client it was issued to. Anything else is ``active: false``."""
    claims = await _access_claims(verifier, token)
    if claims is not None:
        if claims.token_id is not None:
            revoked = await session.get(RevokedAccessToken, claims.token_id)
            if revoked is not None:
                return Introspection(active=False)
        if not claims.is_machine:
            user = await session.get(User, claims.user_id)
            if user is None or not user.is_active:
                return Introspection(active=False)
        if claims.is_machine and await session.get(OAuthClient, claims.subject) is None:
            return Introspection(active=False)
        payload = claims.claims
        return Introspection(
            active=True,
            scope=format_scope(claims.scopes),
            client_id=claims.client_id or settings.public_client_id,
            username=claims.username,
            token_type="Bearer",  # noqa: S106 (RFC 7662 §2.2 token_type)
            exp=claims.expires_at,
            iat=payload.get("iat"),
            nbf=payload.get("nbf"),
            sub=claims.subject,
            aud=payload.get("aud"),
            iss=payload.get("iss"),
            jti=claims.token_id,
        )
    state = await refresh.find(session, token)
    if state is None:
        return Introspection(active=False)
    family, user = state.family, state.user
    if (
        state.token_used
        or family.revoked_at is not None
        or family.expires_at <= now
        or not user.is_active
        or family.client_id != caller.client_id
    ):
        return Introspection(active=False)
    scopes = refresh.family_scopes(user, family.scope) & frozenset(caller.scopes)
    return Introspection(
        active=True,
        scope=format_scope(scopes),
        client_id=caller.client_id,
        username=user.username,
        token_type="refresh_token",  # noqa: S106
        exp=int(family.expires_at.timestamp()),
        iat=int(state.issued_at.timestamp()),
        sub=str(user.id),
        iss=settings.issuer,
    )
