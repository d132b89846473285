"""Login timing: an unknown user costs the same as a wrong password."""

import statistics
import time

import httpx

from ..conftest import AppContext, unique
from ..helpers import register

ROUNDS = 10  # ~80 ms per verification: hashing dominates the request, as in production
SAMPLES = 15


async def _timed_failure(client: httpx.AsyncClient, username: str) -> float:
    started = time.perf_counter()
    response = await client.post(
        "/auth/token", data={"username": username, "password": "Wr0ng-Passw0rd!"}
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 401
    return elapsed


async def test_unknown_user_costs_the_same_as_a_wrong_password(app_context: AppContext) -> None:
    async with app_context(bcrypt_rounds=ROUNDS, login_throttle_max_failures=1000) as (_, client):
        user = await register(client)
        unknown = unique("ghost")
        for _ in range(2):  # warm up both paths (connections, caches)
            await _timed_failure(client, user["username"])
            await _timed_failure(client, unknown)
        # Interleaved, so load from anything else on the machine hits both paths alike.
        wrong, missing = [], []
        for _ in range(SAMPLES):
            wrong.append(await _timed_failure(client, user["username"]))
            missing.append(await _timed_failure(client, unknown))
    assert statistics.median(wrong) > 0.02  # a real hash was computed on both paths
    assert statistics.median(missing) > 0.02
    # Each pair was measured back to back, under the same machine load; its ratio is what a
    # timing attacker could observe. The median pair must be within 20%.
    ratio = statistics.median(m / w for m, w in zip(missing, wrong, strict=True))
    assert 0.8 <= ratio <= 1.2, (ratio, wrong, missing)
