from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from auth_service.throttle import AccountThrottled, LoginThrottle, ThrottleUnavailable
from svckit.testing.servers import free_port

from .conftest import PASSWORD, AppContext, FakeClock, unique
from .helpers import login, register


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator["Redis[str]"]:
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()  # type: ignore[attr-defined]  # stubs predate redis 5


def make(redis: "Redis[Any]", clock: FakeClock, **kwargs: int) -> LoginThrottle:
    return LoginThrottle(
        redis,
        max_failures=kwargs.get("max_failures", 3),
        window=kwargs.get("window", 60),
        lockout=kwargs.get("lockout", 120),
        clock=clock,
        prefix=unique("test-throttle"),
    )


async def test_locks_after_max_failures_then_recovers(redis: "Redis[str]") -> None:
    clock = FakeClock()
    throttle = make(redis, clock)
    for _ in range(2):
        await throttle.check("alice")
        assert not await throttle.record_failure("alice")
    await throttle.check("alice")
    assert await throttle.record_failure("alice")  # the third failure locks
    with pytest.raises(AccountThrottled) as caught:
        await throttle.check("alice")
    assert caught.value.status_code == 429
    assert caught.value.headers["Retry-After"] == "120"

    clock.advance(119.5)
    with pytest.raises(AccountThrottled) as caught:
        await throttle.check("alice")
    assert caught.value.headers["Retry-After"] == "1"
    clock.advance(1)
    await throttle.check("alice")
    # The counter started afresh.
    assert not await throttle.record_failure("alice")


async def test_failures_outside_the_window_do_not_count(redis: "Redis[str]") -> None:
    clock = FakeClock()
    throttle = make(redis, clock)
    for _ in range(5):
        assert not await throttle.record_failure("bob")
        clock.advance(31)  # at most two failures inside any 60 s window
    await throttle.check("bob")


async def test_names_are_normalised(redis: "Redis[str]") -> None:
    throttle = make(redis, FakeClock(), max_failures=2)
    await throttle.record_failure("Carol")
    assert await throttle.record_failure(" carol ")
    with pytest.raises(AccountThrottled):
        await throttle.check("CAROL")
    await throttle.check("dave")


async def test_reset_forgets_failures(redis: "Redis[str]") -> None:
    throttle = make(redis, FakeClock())
    await throttle.record_failure("erin")
    await throttle.record_failure("erin")
    await throttle.reset("erin")
    assert not await throttle.record_failure("erin")


async def test_redis_down_fails_closed() -> None:
    dead = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    try:
        throttle = make(dead, FakeClock())
        with pytest.raises(ThrottleUnavailable):
            await throttle.check("frank")
        with pytest.raises(ThrottleUnavailable):
            await throttle.record_failure("frank")
    finally:
        await dead.aclose()  # type: ignore[attr-defined]  # stubs predate redis 5


# ------------------------------------------------------------------ through the API


async def test_login_is_throttled_per_account_and_recovers(
    app_context: AppContext, clock: FakeClock
) -> None:
    async with app_context(
        login_throttle_max_failures=3,
        login_throttle_window_seconds=60,
        login_throttle_lockout_seconds=300,
    ) as (_, client):
        user = await register(client)
        for _ in range(3):
            response = await client.post(
                "/auth/token", data={"username": user["username"], "password": "Wr0ng-pass!"}
            )
            assert response.status_code == 401
        # Locked: even the right password, from any client, by username or email.
        for identifier in (user["username"], user["username"].upper()):
            response = await client.post(
                "/auth/token", data={"username": identifier, "password": PASSWORD}
            )
            assert response.status_code == 429
            assert response.headers["retry-after"] == "300"
            assert response.json()["code"] == "too_many_attempts"

        clock.advance(301)
        await login(client, user["username"])


async def test_unknown_accounts_are_throttled_like_real_ones(app_context: AppContext) -> None:
    async with app_context(login_throttle_max_failures=2) as (_, client):
        name = unique()
        statuses = [
            (await client.post("/auth/token", data={"username": name, "password": "x"})).status_code
            for _ in range(3)
        ]
    assert statuses == [401, 401, 429]


async def test_a_successful_login_resets_the_count(app_context: AppContext) -> None:
    async with app_context(login_throttle_max_failures=3) as (_, client):
        user = await register(client)
        bad = {"username": user["username"], "password": "Wr0ng-pass!"}
        for _ in range(2):
            assert (await client.post("/auth/token", data=bad)).status_code == 401
        await login(client, user["username"])
        for _ in range(2):
            assert (await client.post("/auth/token", data=bad)).status_code == 401
        await login(client, user["username"])


async def test_login_fails_closed_when_redis_is_down(app_context: AppContext) -> None:
    async with app_context(redis_url=f"redis://127.0.0.1:{free_port()}/0") as (_, client):
        user = await register(client)  # registration does not need Redis
        response = await client.post(
            "/auth/token", data={"username": user["username"], "password": PASSWORD}
        )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
