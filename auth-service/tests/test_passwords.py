import asyncio
import time
from collections.abc import Iterator
from typing import Any

import bcrypt
import pytest

from auth_service.passwords import HashingBusy, PasswordHasher

from .conftest import AppContext


@pytest.fixture
def hasher() -> Iterator[PasswordHasher]:
    h = PasswordHasher(rounds=4, concurrency=2, queue_timeout=5)
    yield h
    h.close()


async def test_hash_uses_bcrypt_sha256_and_verifies(hasher: PasswordHasher) -> None:
    hashed = await hasher.hash("Corr3ct-Horse!")
    assert hashed.startswith("$bcrypt-sha256$")
    assert (await hasher.verify("Corr3ct-Horse!", hashed)).ok
    assert not (await hasher.verify("corr3ct-Horse!", hashed)).ok


async def test_passwords_sharing_their_first_72_bytes_are_different(hasher: PasswordHasher) -> None:
    prefix = "A" * 72
    hashed = await hasher.hash(prefix + "one")
    assert (await hasher.verify(prefix + "one", hashed)).ok
    assert not (await hasher.verify(prefix + "two", hashed)).ok
    assert not (await hasher.verify(prefix, hashed)).ok


@pytest.mark.parametrize("length", [128, 512, 1024])
async def test_long_passwords_work_whole(hasher: PasswordHasher, length: int) -> None:
    password = ("Ab1!" * 300)[:length]
    hashed = await hasher.hash(password)
    assert (await hasher.verify(password, hashed)).ok
    assert not (await hasher.verify(password[:-1] + "?", hashed)).ok


async def test_composed_and_decomposed_unicode_are_the_same_password(
    hasher: PasswordHasher,
) -> None:
    composed = "Caf\u00e9-P4ss!"
    decomposed = "Cafe\u0301-P4ss!"
    assert composed != decomposed
    hashed = await hasher.hash(decomposed)
    assert (await hasher.verify(composed, hashed)).ok


async def test_sixty_four_four_byte_emoji(hasher: PasswordHasher) -> None:
    password = "\U0001f600" * 64
    assert len(password.encode()) == 256
    hashed = await hasher.hash(password)
    assert (await hasher.verify(password, hashed)).ok
    assert not (await hasher.verify("\U0001f600" * 63 + "\U0001f601", hashed)).ok


async def test_legacy_bcrypt_hash_verifies_and_is_upgraded(hasher: PasswordHasher) -> None:
    legacy = bcrypt.hashpw(b"Old-Passw0rd!", bcrypt.gensalt(4)).decode()
    result = await hasher.verify("Old-Passw0rd!", legacy)
    assert result.ok
    assert result.new_hash is not None
    assert result.new_hash.startswith("$bcrypt-sha256$")
    assert (await hasher.verify("Old-Passw0rd!", result.new_hash)).ok
    assert not (await hasher.verify("wrong", legacy)).ok


async def test_a_lower_cost_is_upgraded_but_a_higher_one_is_kept() -> None:
    weak = PasswordHasher(rounds=4, concurrency=1, queue_timeout=5)
    current = PasswordHasher(rounds=5, concurrency=1, queue_timeout=5)
    strong = PasswordHasher(rounds=6, concurrency=1, queue_timeout=5)
    try:
        assert (await current.verify("pw", await weak.hash("pw"))).new_hash is not None
        assert (await current.verify("pw", await strong.hash("pw"))).new_hash is None
        assert (await current.verify("pw", await current.hash("pw"))).new_hash is None
    finally:
        for h in (weak, current, strong):
            h.close()


@pytest.mark.parametrize("stored", ["", "not-a-hash", "$2b$04$short", "$bcrypt-sha256$garbage"])
async def test_a_corrupt_stored_hash_never_verifies(hasher: PasswordHasher, stored: str) -> None:
    assert not (await hasher.verify("anything", stored)).ok


async def test_no_stored_hash_runs_a_dummy_verification(
    hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    original = hasher._verify_and_update

    def spy(password: str, hashed: str) -> tuple[bool, str | None]:
        calls.append(hashed)
        return original(password, hashed)

    monkeypatch.setattr(hasher, "_verify_and_update", spy)
    result = await hasher.verify("whatever", None)
    assert not result.ok
    assert len(calls) == 1
    assert calls[0].startswith("$bcrypt-sha256$")


async def test_hashing_runs_off_the_event_loop() -> None:
    hasher = PasswordHasher(rounds=11, concurrency=1, queue_timeout=5)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        started = time.perf_counter()
        await hasher.hash("Corr3ct-Horse!")
        elapsed = time.perf_counter() - started
    finally:
        task.cancel()
        hasher.close()
    assert elapsed > 0.05  # a real bcrypt cost
    assert ticks >= 5  # the loop kept running meanwhile


async def test_a_full_queue_answers_busy_quickly() -> None:
    hasher = PasswordHasher(rounds=12, concurrency=1, queue_timeout=0.05)
    try:
        first = asyncio.create_task(hasher.hash("Corr3ct-Horse!"))
        await asyncio.sleep(0.01)
        started = time.perf_counter()
        with pytest.raises(HashingBusy) as caught:
            await hasher.hash("Another-0ne!")
        assert time.perf_counter() - started < 0.2
        assert caught.value.status_code == 503
        assert caught.value.headers["Retry-After"] == "1"
        assert (await first).startswith("$bcrypt-sha256$")
    finally:
        hasher.close()


async def test_concurrency_is_bounded() -> None:
    hasher = PasswordHasher(rounds=8, concurrency=2, queue_timeout=30)
    running = peak = 0
    original = hasher._context.hash

    def tracked(password: str) -> Any:  # passlib is untyped
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            return original(password)
        finally:
            running -= 1

    hasher._context.hash = tracked
    try:
        await asyncio.gather(*(hasher.hash(f"pw{i}") for i in range(6)))
    finally:
        hasher.close()
    assert peak == 2


async def test_logins_beyond_the_hashing_queue_answer_503(
    app_context: AppContext, fresh_database_url: str
) -> None:
    from .helpers import register

    async with app_context(
        use_database=False,
        database_url=fresh_database_url,
        bcrypt_rounds=12,
        hashing_concurrency=1,
        hashing_queue_timeout_seconds=0.05,
        login_throttle_max_failures=1000,
    ) as (_, client):
        user = await register(client)
        form = {"username": user["username"], "password": "Wr0ng-Passw0rd!"}
        responses = await asyncio.gather(*(client.post("/auth/token", data=form) for _ in range(3)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [401, 503, 503]
    busy = next(r for r in responses if r.status_code == 503)
    assert busy.headers["retry-after"] == "1"
    assert busy.json()["code"] == "busy"


async def test_a_held_slot_is_reused_inside_and_makes_others_wait() -> None:
    hasher = PasswordHasher(rounds=4, concurrency=1, queue_timeout=0.05)
    try:
        async with hasher.slot():
            # Hashes inside the block use the slot already held (no self-deadlock)...
            assert (await hasher.verify("Corr3ct-Horse!", None)).ok is False
            assert (await hasher.hash("Corr3ct-Horse!")).startswith("$bcrypt-sha256$")
            # ...while another task finds no free slot and is told so quickly.
            with pytest.raises(HashingBusy):
                await asyncio.create_task(hasher.hash("Another-0ne!"))
        assert (await hasher.hash("Another-0ne!")).startswith("$bcrypt-sha256$")
    finally:
        hasher.close()


async def test_logins_waiting_for_a_hashing_slot_hold_no_database_connection(
    app_context: AppContext, fresh_database_url: str
) -> None:
    """A login flood must not drain the pool every other request needs."""
    from .conftest import PASSWORD
    from .helpers import register

    async with app_context(
        use_database=False,
        database_url=fresh_database_url,
        bcrypt_rounds=4,
        hashing_concurrency=1,
        hashing_queue_timeout_seconds=5,
        db_pool_size=1,
        db_max_overflow=0,
        db_connect_timeout_seconds=1,
        login_throttle_max_failures=1000,
    ) as (app, client):
        user = await register(client)
        login = await client.post(
            "/auth/token", data={"username": user["username"], "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
        hasher = app.state.runtime.hasher
        form = {"username": user["username"], "password": "Wr0ng-Passw0rd!"}
        async with hasher.slot():
            waiting = [asyncio.create_task(client.post("/auth/token", data=form)) for _ in range(3)]
            await asyncio.sleep(0.3)
            # The only pool connection is still free for everyone else.
            started = time.perf_counter()
            me = await client.get("/auth/me", headers=bearer)
            assert me.status_code == 200, me.text
            assert time.perf_counter() - started < 1
            assert not any(task.done() for task in waiting)
        responses = await asyncio.gather(*waiting)
    assert [r.status_code for r in responses] == [401, 401, 401]
