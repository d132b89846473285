"""Races the API cannot be trusted to avoid by checking first: real commits, real locks."""

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from auth_service.db import Database
from auth_service.models import User
from auth_service.users import service
from auth_service.users.errors import LastAdmin, UsernameTaken

from ..conftest import PASSWORD, AppContext, unique


async def test_concurrent_registrations_of_one_username(
    app_context: AppContext, fresh_database_url: str
) -> None:
    async with app_context(use_database=False, database_url=fresh_database_url) as (_, client):
        username = unique("race")
        bodies = [
            {
                "username": username if i % 2 else username.upper(),
                "email": f"{unique()}@e.com",
                "password": PASSWORD,
            }
            for i in range(4)
        ]
        responses = await asyncio.gather(
            *(client.post("/auth/register", json=body) for body in bodies)
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 400, 400, 400]
    assert {r.json()["code"] for r in responses if r.status_code == 400} == {"username_taken"}


async def test_concurrent_registrations_of_one_email(
    app_context: AppContext, fresh_database_url: str
) -> None:
    async with app_context(use_database=False, database_url=fresh_database_url) as (_, client):
        email = f"{unique()}@example.com"
        responses = await asyncio.gather(
            *(
                client.post(
                    "/auth/register",
                    json={"username": unique(), "email": email, "password": PASSWORD},
                )
                for _ in range(4)
            )
        )
    assert sorted(r.status_code for r in responses) == [200, 400, 400, 400]
    assert {r.json()["code"] for r in responses if r.status_code == 400} == {"email_taken"}


async def test_the_unique_index_backs_up_the_check(database: Database) -> None:
    """Without the pre-check (a lost race), the flush itself maps to username_taken."""
    now = datetime.now(UTC)
    name = unique("Idx")
    async with database.transaction() as session:
        await service.create_user(
            session, username=name, email=f"{unique()}@e.com", hashed_password="x", now=now
        )
    async with database.sessionmaker() as session:
        session.add(
            User(
                username=name.lower(),
                email=f"{unique()}@e.com",
                hashed_password="x",
                created_at=now,
                updated_at=now,
            )
        )
        with pytest.raises(UsernameTaken):
            await service._flush_unique(session)
        await session.rollback()


async def test_two_admins_demoting_each_other_cannot_both_succeed(fresh_database_url: str) -> None:
    from auth_service.settings import Settings

    database = Database.from_settings(Settings(database_url=fresh_database_url))
    now = datetime.now(UTC)
    try:
        async with database.transaction() as session:
            await session.execute(update(User).values(is_admin=False))
            a = await service.create_user(
                session,
                username=unique("a"),
                email=f"{unique()}@e.com",
                hashed_password="x",
                is_admin=True,
                now=now,
            )
            b = await service.create_user(
                session,
                username=unique("b"),
                email=f"{unique()}@e.com",
                hashed_password="x",
                is_admin=True,
                now=now,
            )

        async def demote(user_id: int) -> str:
            try:
                async with database.transaction() as session:
                    user = await session.get(User, user_id)
                    assert user is not None
                    await service.update_user(session, user, {"is_admin": False}, now=now)
                    await asyncio.sleep(0.1)  # hold the locks while the other one tries
                return "ok"
            except LastAdmin:
                return "refused"

        results = await asyncio.gather(demote(a.id), demote(b.id))
    finally:
        await database.close()
    assert sorted(results) == ["ok", "refused"]
