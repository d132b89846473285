"""``/auth/token`` (RFC 6749), ``/auth/revoke`` (RFC 7009), ``/auth/introspect`` (RFC 7662)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, BackgroundTasks, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from auth_service.auth.schemas import TokenResponse
from auth_service.deps import (
    ClientThrottleDep,
    ClockDep,
    HasherDep,
    KeyRingDep,
    LoginThrottleDep,
    MfaThrottleDep,
    SessionDep,
    SettingsDep,
    TotpBoxDep,
    VerifierDep,
    WakeRelayDep,
)
from auth_service.oauth import service
from auth_service.oauth.credentials import presented_client
from auth_service.oauth.errors import InvalidClient, InvalidRequest
from auth_service.oauth.schemas import Introspection, TokenActionForm, TokenForm
from auth_service.responses import error_responses


def _repeated_parameters(body: bytes) -> list[str]:
    # latin-1 maps every byte (and every %XX) to one character: any body parses, none fails.
    text = body.decode("latin-1")
    pairs = parse_qsl(text, keep_blank_values=True, encoding="latin-1")
    counts = Counter(key for key, _ in pairs)
    return sorted(key for key, n in counts.items() if n > 1)


class _OAuthRoute(APIRoute):
    """RFC 6749 §3.1/§3.2: a parameter sent twice is ``invalid_request`` (400), whichever copy
    a parser would keep. A malformed form (an oversized field) stays the usual 422, but with
    §5.2's ``error: invalid_request`` besides: OAuth2 client libraries only see an error there.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            content_type = request.headers.get("content-type", "")
            if content_type.startswith("application/x-www-form-urlencoded"):
                # Starlette keeps the body, so the form is parsed from it again afterwards.
                repeated = _repeated_parameters(await request.body())
                if repeated:
                    names = ", ".join(repeated)[:200]
                    raise InvalidRequest(f"Parameters sent more than once: {names}")
            try:
                return await handler(request)
            except RequestValidationError as exc:
                # Only loc/msg/type, as everywhere: pydantic's "input" could echo a secret.
                errors = [
                    {
                        "loc": list(e.get("loc", ())),
                        "msg": str(e.get("msg", "")),
                        "type": e.get("type"),
                    }
                    for e in exc.errors()
                ]
                fields = sorted({str(e["loc"][-1]) for e in errors if e["loc"]})
                raise InvalidRequest(
                    f"Malformed form field(s): {', '.join(fields) or 'body'}",
                    status_code=422,
                    extra={"errors": errors},
                ) from None

        return route


router = APIRouter(prefix="/auth", tags=["oauth2"], route_class=_OAuthRoute)

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@router.post(
    "/token",
    response_model=TokenResponse,
    response_model_exclude_none=True,
    summary="Get tokens (OAuth2 password, refresh_token, client_credentials and MFA grants)",
    description=(
        "`grant_type` `password` (the default when absent): `username` (or an email) and "
        "`password`; `refresh_token`: `refresh_token`; `client_credentials`: a registered "
        "client's credentials (HTTP Basic or `client_id`/`client_secret` form fields). "
        "Optional `scope`. Errors carry RFC 6749 §5.2 `error`/`error_description`.\n\n"
        "Two-factor sign-in: for a user with TOTP the password grant answers 401 "
        "`error: mfa_required` with an `mfa_token` (opaque, single-purpose, short-lived); "
        "finish with `grant_type` `urn:auth-service:params:oauth:grant-type:mfa-otp`, "
        "`mfa_token` and `otp` (the app's 6-digit code, or a recovery code), from the same "
        'client. Access tokens carry `amr` (RFC 8176): `["pwd"]` or '
        '`["pwd", "otp", "mfa"]`, kept by refreshes.'
    ),
    responses=error_responses(
        400,
        401,
        403,
        422,
        429,
        503,
        s400="`invalid_request`, `invalid_grant`, `unauthorized_client`, "
        "`unsupported_grant_type`, `invalid_scope`",
        s401="Bad credentials (`invalid_grant`), client authentication failed "
        "(`invalid_client`), or a second factor is needed (`mfa_required`, with `mfa_token`)",
        s403="Inactive user",
        s429="Too many failed attempts for this account or client; see `Retry-After`",
    ),
)
async def token(
    request: Request,
    form: Annotated[TokenForm, Depends(TokenForm.parse)],
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    hasher: HasherDep,
    keyring: KeyRingDep,
    throttle: LoginThrottleDep,
    client_throttle: ClientThrottleDep,
    mfa_throttle: MfaThrottleDep,
    totp_box: TotpBoxDep,
    response: Response,
) -> TokenResponse:
    presented = presented_client(
        request, client_id=form.client_id, client_secret=form.client_secret
    )
    result = await service.issue(
        session,
        form,
        presented,
        settings=settings,
        clock=clock,
        hasher=hasher,
        keyring=keyring,
        throttle=throttle,
        client_throttle=client_throttle,
        mfa_throttle=mfa_throttle,
        totp_box=totp_box,
    )
    response.headers.update(_NO_STORE)
    return result


@router.post(
    "/revoke",
    summary="Revoke a token (RFC 7009): a refresh token's family, or an access token",
    description=(
        "Form `token` and optional `token_type_hint`. A registered client authenticates "
        "(its tokens can only be revoked by it); the first-party client needs no credentials. "
        "200 for every well-formed request, whether or not the token was valid."
    ),
    responses={
        200: {"content": {"application/json": {"schema": {"type": "object"}}}},
        **error_responses(400, 401, 422, 429, 503),
    },
)
async def revoke(
    request: Request,
    form: Annotated[TokenActionForm, Depends(TokenActionForm.parse)],
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    hasher: HasherDep,
    client_throttle: ClientThrottleDep,
    verifier: VerifierDep,
    wake_relay: WakeRelayDep,
    background: BackgroundTasks,
) -> JSONResponse:
    if not form.token:
        raise InvalidRequest("Missing form field: token")
    presented = presented_client(
        request, client_id=form.client_id, client_secret=form.client_secret
    )
    caller = await service.resolve_client(session, hasher, client_throttle, settings, presented)
    if await service.revoke(
        session,
        verifier,
        settings,
        token=form.token,
        hint=form.token_type_hint,
        caller=caller,
        now=clock(),
    ):
        # Background tasks run after the response, hence after the commit.
        background.add_task(wake_relay)
    return JSONResponse({}, headers=_NO_STORE)


@router.post(
    "/introspect",
    summary="Introspect a token (RFC 7662; registered clients)",
    response_model=Introspection,
    response_model_exclude_none=True,
    responses=error_responses(400, 401, 422, 429, 503),
)
async def introspect(
    request: Request,
    form: Annotated[TokenActionForm, Depends(TokenActionForm.parse)],
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    hasher: HasherDep,
    client_throttle: ClientThrottleDep,
    verifier: VerifierDep,
) -> JSONResponse:
    presented = presented_client(
        request, client_id=form.client_id, client_secret=form.client_secret
    )
    if presented.credentials is None:
        raise InvalidClient()
    caller = await service.resolve_client(session, hasher, client_throttle, settings, presented)
    assert caller is not None
    if not form.token:
        raise InvalidRequest("Missing form field: token")
    result: dict[str, Any] = (
        await service.introspect(
            session, verifier, settings, token=form.token, caller=caller, now=clock()
        )
    ).body()
    return JSONResponse(result, headers=_NO_STORE)
