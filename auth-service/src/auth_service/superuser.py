"""The first administrator, from ``AUTH_FIRST_SUPERUSER``, ``..._EMAIL``, ``..._PASSWORD``.

Created at start-up, by the same :func:`~auth_service.users.service.register_user` as any
account, only when no account has that username or email, so a restart, a changed password
variable or an administrator renamed since change nothing (a password the policy refuses
still stops the start). Several replicas or workers starting at once serialise on a
PostgreSQL advisory lock held by the creating transaction: one creates, the others then find
the account.
"""

from __future__ import annotations

import logging

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import text

from auth_service.clock import Clock
from auth_service.db import Database
from auth_service.password_policy import PasswordPolicy
from auth_service.passwords import PasswordHasher
from auth_service.settings import Settings
from auth_service.users import service as users
from auth_service.users.errors import EmailTaken, UsernameTaken
from auth_service.users.schemas import UserCreate

logger = logging.getLogger("auth_service.superuser")

# pg_advisory_xact_lock key: "first superuser" (any constant the service uses nowhere else)
_LOCK_KEY = 0x6175_7468_0001


class FirstSuperuserInvalid(ValueError):
    """The configured first administrator cannot be created (the service refuses to start)."""


async def ensure_first_superuser(
    settings: Settings, database: Database, hasher: PasswordHasher, *, clock: Clock
) -> bool:
    """Create the configured first administrator if absent; returns whether it was created."""
    if settings.first_superuser is None or settings.first_superuser_password is None:
        return False
    password = settings.first_superuser_password.get_secret_value()
    try:
        data = UserCreate(
            username=settings.first_superuser,
            email=settings.first_superuser_email or "",
            password=password,
        )
    except ValidationError as exc:
        fields = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors())
        raise FirstSuperuserInvalid(f"AUTH_FIRST_SUPERUSER*: invalid {fields}") from None
    try:
        async with database.transaction() as session:
            await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
            user = await users.register_user(
                session,
                hasher,
                PasswordPolicy.from_settings(settings),
                username=data.username,
                email=data.email,
                password=data.password,
                is_admin=True,
                now=clock(),
            )
    except RequestValidationError as exc:
        problems = "; ".join(str(e["msg"]) for e in exc.errors())
        raise FirstSuperuserInvalid(
            "AUTH_FIRST_SUPERUSER_PASSWORD breaks the password policy: " + problems
        ) from None
    except (UsernameTaken, EmailTaken):
        # Already there (created by another replica, or an account since renamed): the
        # transaction rolled back having written nothing, and the lock went with it.
        return False
    logger.info("first administrator created", extra={"user_id": user.id})
    return True
