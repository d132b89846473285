"""The first administrator from AUTH_FIRST_SUPERUSER* at start-up."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from auth_service.db import Database
from auth_service.models import User
from auth_service.passwords import PasswordHasher
from auth_service.settings import Settings
from auth_service.superuser import FirstSuperuserInvalid, ensure_first_superuser

from .conftest import AppContext, unique

PASSWORD = "F1rst-Admin-Passw0rd!"


def first(make_settings: Callable[..., Settings], **overrides: Any) -> Settings:
    name = unique("root")
    values: dict[str, Any] = {
        "first_superuser": name,
        "first_superuser_email": f"{name}@example.com",
        "first_superuser_password": PASSWORD,
    }
    values.update(overrides)
    return make_settings(**values)


async def test_the_first_superuser_is_created_at_start_and_can_log_in(
    app_context: AppContext, make_settings: Callable[..., Settings]
) -> None:
    settings = first(make_settings)
    overrides = {k: getattr(settings, k) for k in ("first_superuser", "first_superuser_email")}
    async with app_context(**overrides, first_superuser_password=PASSWORD) as (_, client):
        response = await client.post(
            "/auth/token", data={"username": settings.first_superuser, "password": PASSWORD}
        )
        assert response.status_code == 200
        me = await client.get(
            "/auth/me", headers={"Authorization": f"Bearer {response.json()['access_token']}"}
        )
        assert me.json()["is_admin"] is True


async def test_concurrent_starts_create_one_administrator(
    make_settings: Callable[..., Settings], fresh_database_url: str
) -> None:
    settings = first(make_settings, database_url=fresh_database_url)
    databases = [Database.from_settings(settings) for _ in range(4)]
    hasher = PasswordHasher(rounds=4, concurrency=4, queue_timeout=30)
    try:
        created = await asyncio.gather(
            *(ensure_first_superuser(settings, db, hasher, clock=_now) for db in databases)
        )
        assert sorted(created) == [False, False, False, True]
        assert not await ensure_first_superuser(settings, databases[0], hasher, clock=_now)
    finally:
        hasher.close()
        for db in databases:
            await db.close()
    engine = create_async_engine(fresh_database_url)
    try:
        async with engine.connect() as conn:
            count = await conn.scalar(
                select(func.count()).where(User.username == settings.first_superuser)
            )
    finally:
        await engine.dispose()
    assert count == 1


def _now() -> datetime:
    return datetime.now(UTC)


async def test_a_weak_first_superuser_password_refuses_to_start(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    settings = first(make_settings, first_superuser_password="weak")
    hasher = PasswordHasher(rounds=4, concurrency=1, queue_timeout=5)
    try:
        with pytest.raises(FirstSuperuserInvalid):
            await ensure_first_superuser(settings, database, hasher, clock=_now)
    finally:
        hasher.close()


def test_the_three_variables_come_together(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ValidationError):
        make_settings(first_superuser="root")


def test_a_placeholder_password_is_refused_in_production() -> None:
    with pytest.raises(ValidationError):
        Settings(
            environment="production",
            key_passphrase=SecretStr("a-long-enough-passphrase"),
            first_superuser="root",
            first_superuser_email="root@example.com",
            first_superuser_password="changeme",
        )
