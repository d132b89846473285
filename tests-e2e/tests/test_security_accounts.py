"""Accounts and passwords under attack, through the gateway.

* Login answers for an unknown user and for a wrong password are identical (status, body,
  headers) and take the same time (medians within 10 ms): no user enumeration.
* The per-account throttle holds when guesses come from many source addresses; the gateway's
  per-address limit cannot be reset with spoofed forwarding headers.
* Passwords (NIST SP 800-63B §3.1.1.2): any Unicode works (64 four-byte emoji), nothing is
  truncated at bcrypt's 72 bytes, composed and decomposed spellings are one password, a
  1 MB password is refused at once, common passwords and passwords containing the username
  are refused with reasons.
* Refresh tokens: of concurrent refreshes with one token exactly one succeeds; token
  responses are never stored by caches.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

from e2e.api import Client, assert_envelope, unique_username

# conftest's ``client_factory``: a new client of the gateway on a source address of its own.
ClientFactory = Callable[[], Client]

WRONG = "Wr0ng!Password"
LOGINS_PER_ADDRESS = 4  # the gateway allows 5 per minute per address; keep one spare

# Response headers that legitimately differ between any two responses.
VARYING_HEADERS = {"date", "x-request-id"}


class Addresses:
    """Hands out clients, moving to a fresh source address every few logins."""

    def __init__(self, make: Callable[[], Client], per_address: int = LOGINS_PER_ADDRESS):
        self._make = make
        self._per_address = per_address
        self._used = per_address
        self._client: Client | None = None

    def next(self) -> Client:
        if self._client is None or self._used >= self._per_address:
            self._client = self._make()
            self._used = 0
        self._used += 1
        return self._client


@pytest.fixture
def addresses(client_factory: ClientFactory) -> Addresses:
    return Addresses(client_factory)


def _comparable(response: httpx.Response) -> tuple[int, dict[str, object], dict[str, str]]:
    body = response.json()
    body.pop("request_id")
    headers = {k: v for k, v in response.headers.items() if k.lower() not in VARYING_HEADERS}
    return response.status_code, body, headers


def test_unknown_user_and_wrong_password_are_indistinguishable(addresses: Addresses) -> None:
    """Same answer, same time. Pairs of attempts (one of each kind, in random order) are
    measured in rounds; on a noisy machine more rounds are taken (up to a cap) before the
    medians are judged, so noise averages out while a systematic difference (e.g. a
    skipped password hash, ~100x the bound) can never pass."""
    rng = random.Random(8725)
    pairs_per_round, max_rounds = 16, 4
    failures_per_account = 4  # below the per-account throttle (5)
    accounts: list[str] = []
    failures = 0

    def target(kind: str) -> str:
        nonlocal failures
        if kind == "unknown-user":
            return unique_username()
        if not accounts or failures >= failures_per_account:
            accounts.append(addresses.next().register()["username"])
            failures = 0
        failures += 1
        return accounts[-1]

    timings: dict[str, list[float]] = {"wrong-password": [], "unknown-user": []}
    answers: dict[str, set[str]] = {"wrong-password": set(), "unknown-user": set()}

    def attempt(kind: str, measured: bool = True) -> None:
        username = target(kind)
        client = addresses.next()
        started = time.perf_counter()
        response = client.login_response(username, WRONG)
        elapsed = time.perf_counter() - started
        assert response.status_code == 401, (kind, response.text)
        if measured:
            timings[kind].append(elapsed)
        status, body, headers = _comparable(response)
        answers[kind].add(repr((status, sorted(body.items()), sorted(headers.items()))))

    attempt("wrong-password", measured=False)  # warm-up of both paths
    attempt("unknown-user", measured=False)
    difference = float("inf")
    medians: dict[str, float] = {}
    for _ in range(max_rounds):
        for _ in range(pairs_per_round):
            kinds = ["wrong-password", "unknown-user"]
            rng.shuffle(kinds)
            for kind in kinds:
                attempt(kind)
        medians = {kind: statistics.median(values) for kind, values in timings.items()}
        difference = abs(medians["wrong-password"] - medians["unknown-user"])
        if difference < 0.010:
            break

    # Status, body and headers: one answer for both kinds of failure.
    assert len(answers["wrong-password"]) == 1, answers["wrong-password"]
    assert answers["wrong-password"] == answers["unknown-user"]
    samples = len(timings["unknown-user"])
    print(f"medians over {samples} pairs:", {k: f"{v * 1000:.1f} ms" for k, v in medians.items()})
    assert difference < 0.010, medians


def test_account_throttle_holds_across_many_source_addresses(
    client_factory: ClientFactory,
) -> None:
    victim = client_factory().register()
    # A distributed guesser: every attempt from another address, so the gateway's
    # per-address limit never triggers; auth-service's per-account throttle must.
    statuses = [
        client_factory().login_response(victim["username"], f"Gu3ss!{n}").status_code
        for n in range(5)
    ]
    assert statuses == [401] * 5
    refused = client_factory().login_response(victim["username"], "Gu3ss!5")
    assert_envelope(refused, 429, "too_many_attempts")  # auth-service's, not Traefik's
    assert int(refused.headers["retry-after"]) >= 1
    # Locked means locked: even the right password, from yet another address, waits.
    assert_envelope(client_factory().login_response(victim["username"]), 429)
    # Case and whitespace variants of the name share the lock.
    variant = f"  {victim['username'].upper()} "
    assert_envelope(client_factory().login_response(variant), 429)
    # Other accounts are unaffected.
    other = client_factory()
    bystander = other.register()
    assert other.login_response(bystander["username"]).status_code == 200


SPOOFED_HEADERS = [
    {"X-Forwarded-For": "203.0.113.1"},
    {"X-Forwarded-For": "203.0.113.2, 198.51.100.2"},
    {"X-Real-IP": "203.0.113.3"},
    {"Forwarded": "for=203.0.113.4"},
    {"True-Client-IP": "203.0.113.5", "CF-Connecting-IP": "203.0.113.5"},
    {"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1", "X-Client-IP": "127.0.0.1"},
    {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Host": "evil.example"},
]


def test_gateway_limit_ignores_spoofed_client_address_headers(client: Client) -> None:
    statuses = []
    for headers in SPOOFED_HEADERS:
        response = client.post(
            "/auth/token",
            data={"username": unique_username(), "password": WRONG},
            headers=headers,
        )
        statuses.append(response.status_code)
    # Every request claimed another client; all of them spent this address's budget (5).
    assert statuses[:5] == [401] * 5, statuses
    assert set(statuses[5:]) == {429}, statuses


# ------------------------------------------------------------------------------- passwords


@dataclass
class Account:
    client: Client
    username: str

    def login_status(self, password: str) -> int:
        return self.client.login_response(self.username, password).status_code


@pytest.fixture
def registrar(client_factory: ClientFactory) -> Callable[[str], Account]:
    """Registers a user with a given password, from an address of its own."""

    def register(password: str) -> Account:
        client = client_factory()
        return Account(client, client.register(password=password)["username"])

    return register


def test_sixty_four_four_byte_emoji_are_a_password(registrar: Callable[[str], Account]) -> None:
    emoji = "".join(chr(0x1F600 + n) for n in range(64))
    assert all(len(c.encode()) == 4 for c in emoji)
    password = "Aa1" + emoji  # the seed's classes, then 256 bytes of emoji
    account = registrar(password)
    assert account.login_status(password) == 200
    assert account.login_status(password[:-1]) == 401
    assert account.login_status(password[:-1] + chr(0x1F680)) == 401


def test_passwords_are_not_truncated_at_72_bytes(registrar: Callable[[str], Account]) -> None:
    prefix = "Aa1!" + "b" * 68
    assert len(prefix.encode()) == 72
    account = registrar(prefix + "-the-rest-matters")
    assert account.login_status(prefix) == 401
    assert account.login_status(prefix + "-the-rest-differs") == 401
    assert account.login_status(prefix + "-the-rest-matters") == 200
    # The same across a multi-byte boundary: 71 bytes, then a 4-byte character.
    prefix = "Aa1!" + "c" * 67
    account = registrar(prefix + "\U0001f600X")
    assert account.login_status(prefix + "\U0001f600Y") == 401
    assert account.login_status(prefix + "\U0001f600X") == 200


def test_composed_and_decomposed_unicode_are_one_password(
    registrar: Callable[[str], Account],
) -> None:
    composed = unicodedata.normalize("NFC", "Pässwörd-Ünïcödé-1")
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    account = registrar(decomposed)
    assert account.login_status(composed) == 200
    assert account.login_status(decomposed) == 200
    account = registrar(composed)
    assert account.login_status(decomposed) == 200


def test_megabyte_password_is_refused_at_once(client: Client) -> None:
    huge = "Aa1!" + "x" * 1_000_000
    registration = {
        "username": unique_username(),
        "email": f"{unique_username()}@example.com",
        "password": huge,
    }
    for path, kwargs in [
        ("/auth/register", {"json": registration}),
        ("/auth/token", {"data": {"username": unique_username(), "password": huge}}),
    ]:
        started = time.perf_counter()
        response = client.post(path, **kwargs)
        elapsed = time.perf_counter() - started
        assert response.status_code in (413, 422), (path, response.text[:200])
        assert elapsed < 2.0, (path, elapsed)  # no hashing of a megabyte, no slow parsing


@pytest.mark.parametrize(
    "password", ["P@ssw0rd1", "P@ssw0rd!", "Passw0rd!", "Welcome1!", "Qwerty123!", "Admin@123"]
)
def test_common_passwords_are_refused_with_a_reason(client: Client, password: str) -> None:
    response = client.post(
        "/auth/register",
        json={
            "username": unique_username(),
            "email": f"{unique_username()}@example.com",
            "password": password,
        },
    )
    assert_envelope(response, 422, "validation_error")
    messages = [e["msg"] for e in response.json()["errors"]]
    assert any("common" in m.lower() for m in messages), messages
    assert all(e["loc"] == ["body", "password"] for e in response.json()["errors"])


def test_password_containing_the_username_is_refused_with_a_reason(client: Client) -> None:
    username = unique_username("zelda")
    for password in (f"{username}1!A", f"X1!{username.upper()}"):
        response = client.post(
            "/auth/register",
            json={"username": username, "email": f"{username}@example.com", "password": password},
        )
        assert_envelope(response, 422, "validation_error")
        messages = [e["msg"] for e in response.json()["errors"]]
        assert any("username" in m.lower() for m in messages), messages


def test_passwords_are_never_echoed(client: Client) -> None:
    secret = "Sup3r-Secret-" + unique_username()
    for body in (
        {"username": "no spaces allowed", "email": "x@example.com", "password": secret},
        {"username": unique_username(), "email": "not-an-email", "password": secret},
        {"username": unique_username(), "email": "y@example.com", "password": secret[:5]},
    ):
        response = client.post("/auth/register", json=body)
        assert response.status_code == 422
        assert secret[:5] not in response.text


# --------------------------------------------------------------------------- refresh tokens


def test_concurrent_refreshes_with_one_token_exactly_one_succeeds(
    client_factory: ClientFactory,
) -> None:
    owner = client_factory()
    user = owner.register()
    login = owner.login_response(user["username"])
    assert login.status_code == 200
    assert login.headers["cache-control"] == "no-store"
    refresh_token = login.json()["refresh_token"]

    racers = 8
    clients = [client_factory() for _ in range(racers)]  # no gateway limit in the way
    barrier = threading.Barrier(racers)
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def race(client: Client) -> None:
        barrier.wait()
        response = client.refresh_response(refresh_token)
        with lock:
            results.append(response)

    threads = [threading.Thread(target=race, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200] + [401] * (racers - 1), statuses
    (winner,) = [r for r in results if r.status_code == 200]
    assert winner.headers["cache-control"] == "no-store"
    assert winner.headers.get("pragma") == "no-cache"
    for loser in results:
        if loser.status_code == 401:
            assert loser.json()["status_code"] == 401
