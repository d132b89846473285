"""TOTP enrolment, codes, recovery codes and pending MFA sign-ins (``mfa_token``).

* A code is accepted for the current time step or one step either side (clock drift), and
  only for a step later than the last one accepted: the claim is a conditional ``UPDATE`` of
  the factor's ``last_step``, which PostgreSQL serialises, so a code is used once whichever
  replica sees it, and of two concurrent requests with one code only one wins.
* Recovery codes are 80 random bits, stored as SHA-256 (a high-entropy secret needs no slow
  hash), used up by a conditional ``UPDATE ... WHERE used_at IS NULL``.
* An ``mfa_token`` is opaque (256 random bits), stored as its SHA-256 with the login it
  continues. It is not a JWT, so no verifier accepts it as an access token, and it only
  means something to the MFA grant. Deleting the user (cascade), deactivating it, disabling
  or resetting its factor delete the user's outstanding ones.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
import segno
from pyotp.utils import strings_equal
from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.keys.material import KeyMaterialError
from auth_service.mfa.errors import (
    InvalidOtp,
    MfaAlreadyEnabled,
    MfaNotEnabled,
    MfaNotEnrolled,
    SecondFactorUnavailable,
)
from auth_service.mfa.sealing import SecretBox
from auth_service.models import MfaChallenge, RecoveryCode, TotpFactor, User

logger = logging.getLogger("auth_service.mfa")

DIGITS = 6
INTERVAL = 30
DRIFT_STEPS = 1
RECOVERY_CODE_COUNT = 10
MAX_OTP_LENGTH = 64
# RFC 8176 authentication method references.
AMR_PASSWORD = ("pwd",)
AMR_MFA = ("pwd", "otp", "mfa")


@dataclass(frozen=True, slots=True)
class Enrolment:
    secret: str
    otpauth_uri: str
    qr_svg: str


def throttle_key(user_id: int) -> str:
    """The user's budget of wrong codes (``deps.MfaThrottleDep``): per account, not per login
    name, and not reset by a right password, so a password holder cannot guess on."""
    return f"user:{user_id}"


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL)


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def new_recovery_code() -> str:
    raw = base64.b32encode(secrets.token_bytes(10)).decode()  # 16 characters, 80 bits
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def _normalise(code: str) -> str:
    return "".join(code.split()).replace("-", "").upper()


async def factor_of(session: AsyncSession, user_id: int) -> TotpFactor | None:
    return await session.get(TotpFactor, user_id)


async def is_enabled(session: AsyncSession, user_id: int) -> bool:
    factor = await factor_of(session, user_id)
    return factor is not None and factor.confirmed_at is not None


async def enrol(
    session: AsyncSession, box: SecretBox, user: User, *, issuer: str, now: datetime
) -> Enrolment:
    """A fresh secret for ``user`` (replacing a pending, unconfirmed one)."""
    factor = await factor_of(session, user.id)
    if factor is not None and factor.confirmed_at is not None:
        raise MfaAlreadyEnabled()
    secret = pyotp.random_base32(32)  # 160 bits, RFC 4226's recommended length
    sealed, encrypted = box.seal(secret, user_id=user.id)
    if factor is None:
        session.add(TotpFactor(user_id=user.id, secret=sealed, encrypted=encrypted, created_at=now))
    else:
        factor.secret, factor.encrypted, factor.created_at = sealed, encrypted, now
        factor.last_step = None
    await session.flush()
    uri = _totp(secret).provisioning_uri(name=user.username, issuer_name=issuer)
    qr_svg = segno.make(uri, error="m").svg_data_uri(scale=4)
    return Enrolment(secret=secret, otpauth_uri=uri, qr_svg=qr_svg)


def _matching_step(secret: str, code: str, now: datetime) -> int | None:
    if len(code) != DIGITS or not (code.isascii() and code.isdigit()):
        return None
    totp = _totp(secret)
    current = totp.timecode(now)
    matched = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if strings_equal(totp.generate_otp(step), code):
            matched = step
    return matched


async def _accept_totp(
    session: AsyncSession, box: SecretBox, factor: TotpFactor, code: str, now: datetime
) -> bool:
    try:
        secret = box.open(factor.secret, encrypted=factor.encrypted, user_id=factor.user_id)
    except KeyMaterialError as exc:
        logger.error("a TOTP secret cannot be opened", extra={"reason": str(exc)})
        raise SecondFactorUnavailable() from None
    step = _matching_step(secret, "".join(code.split()), now)
    if step is None:
        return False
    claimed = await session.execute(
        update(TotpFactor)
        .where(
            TotpFactor.user_id == factor.user_id,
            or_(TotpFactor.last_step.is_(None), TotpFactor.last_step < step),
        )
        .values(last_step=step)
        .returning(TotpFactor.user_id)
        .execution_options(synchronize_session=False)
    )
    if claimed.scalar_one_or_none() is None:
        return False  # this step (or a later one) was used already: a replay
    factor.last_step = step
    return True


async def _use_recovery_code(session: AsyncSession, user_id: int, code: str, now: datetime) -> bool:
    normalised = _normalise(code)
    if len(normalised) != 16:
        return False
    used = await session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user_id,
            RecoveryCode.code_hash == _digest(normalised),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=now)
        .returning(RecoveryCode.id)
    )
    return used.first() is not None


async def verify_otp(
    session: AsyncSession, box: SecretBox, factor: TotpFactor, otp: str, *, now: datetime
) -> bool:
    """Accept ``otp`` (a TOTP code or an unused recovery code) once; whether it was."""
    if not otp or len(otp) > MAX_OTP_LENGTH:
        return False
    if await _accept_totp(session, box, factor, otp, now):
        return True
    return await _use_recovery_code(session, factor.user_id, otp, now)


async def confirm(
    session: AsyncSession, box: SecretBox, user: User, code: str, *, now: datetime
) -> list[str]:
    """Activate the pending factor with a valid code; return the recovery codes (shown once)."""
    factor = await factor_of(session, user.id)
    if factor is None:
        raise MfaNotEnrolled()
    if factor.confirmed_at is not None:
        raise MfaAlreadyEnabled()
    if len(code) > MAX_OTP_LENGTH or not await _accept_totp(session, box, factor, code, now):
        raise InvalidOtp()
    factor.confirmed_at = now
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    session.add_all(RecoveryCode(user_id=user.id, code_hash=_digest(_normalise(c))) for c in codes)
    await session.flush()
    return codes


async def _remove(session: AsyncSession, user_id: int) -> bool:
    removed = await session.execute(
        delete(TotpFactor).where(TotpFactor.user_id == user_id).returning(TotpFactor.user_id)
    )
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    await void_challenges(session, user_id)
    return removed.first() is not None


async def disable(
    session: AsyncSession, box: SecretBox, user: User, otp: str, *, now: datetime
) -> None:
    factor = await factor_of(session, user.id)
    if factor is None or factor.confirmed_at is None:
        raise MfaNotEnabled()
    if not await verify_otp(session, box, factor, otp, now=now):
        raise InvalidOtp()
    await _remove(session, user.id)


async def reset(session: AsyncSession, user_id: int) -> bool:
    """An administrator's reset: the factor (pending or active), its recovery codes and the
    user's pending sign-ins are gone. Returns whether there was a factor."""
    return await _remove(session, user_id)


async def reseal(session: AsyncSession, *, old: SecretBox, new: SecretBox) -> int:
    """Re-seal every TOTP secret with ``new`` (``reencrypt-keys``, after the passphrase
    changed). A secret already under ``new`` is left alone, so running it twice is harmless;
    one that opens with neither raises :class:`KeyMaterialError` (the caller rolls back).
    Returns how many changed."""
    changed = 0
    rows = (await session.execute(select(TotpFactor).with_for_update())).scalars().all()
    for factor in rows:
        if not factor.encrypted and not new.encrypts:
            continue
        if factor.encrypted and new.encrypts:
            try:
                new.open(factor.secret, encrypted=True, user_id=factor.user_id)
            except KeyMaterialError:
                pass
            else:
                continue
        secret = old.open(factor.secret, encrypted=factor.encrypted, user_id=factor.user_id)
        factor.secret, factor.encrypted = new.seal(secret, user_id=factor.user_id)
        changed += 1
    await session.flush()
    return changed


# --------------------------------------------------------------------- pending sign-ins


async def start_challenge(
    session: AsyncSession,
    user: User,
    *,
    client_id: str | None,
    scope: str | None,
    show_scope: bool,
    now: datetime,
    lifetime: timedelta,
) -> str:
    token = secrets.token_urlsafe(32)
    session.add(
        MfaChallenge(
            token_hash=_digest(token),
            user_id=user.id,
            client_id=client_id,
            scope=scope,
            show_scope=show_scope,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    await session.flush()
    return token


async def find_challenge(
    session: AsyncSession, token: str, *, now: datetime
) -> tuple[MfaChallenge, User] | None:
    """The unexpired challenge of ``token`` and its user (row-locked, so two requests with
    one token are serialised), or ``None``."""
    if not token or len(token) > 512:
        return None
    row = (
        await session.execute(
            select(MfaChallenge, User)
            .join(User, User.id == MfaChallenge.user_id)
            .where(MfaChallenge.token_hash == _digest(token), MfaChallenge.expires_at > now)
            .with_for_update(of=MfaChallenge)
        )
    ).one_or_none()
    if row is None:
        return None
    return row[0], row[1]


async def finish_challenge(session: AsyncSession, challenge: MfaChallenge) -> None:
    await session.delete(challenge)
    await session.flush()


async def void_challenges(session: AsyncSession, user_id: int) -> None:
    await session.execute(delete(MfaChallenge).where(MfaChallenge.user_id == user_id))


async def prune_challenges(session: AsyncSession, *, now: datetime) -> int:
    result = await session.execute(delete(MfaChallenge).where(MfaChallenge.expires_at <= now))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
