"""``auth-service seed``: sample users and items, created through the public API (the gateway),
exactly as a client would: register, log in, POST items.

It is safe to run twice: an existing sample user is logged in instead of registered. The
gateway rate-limits registration and login, so a 429 is waited out (``Retry-After``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from dataclasses import dataclass, field
from typing import Any

import httpx

SAMPLE_PEOPLE = [
    ("alice", "Alice Liddell"),
    ("bob", "Bob Marley"),
    ("carol", "Carol Danvers"),
    ("dave", "Dave Bowman"),
    ("erin", "Erin Brockovich"),
    ("frank", "Frank Lloyd Wright"),
    ("grace", "Grace Hopper"),
    ("heidi", "Heidi Lamarr"),
    ("ivan", "Ivan Pavlov"),
    ("judy", "Judy Garland"),
    ("mallory", "Mallory Knox"),
    ("niaj", "Niaj Ahmed"),
    ("olivia", "Olivia Pope"),
    ("peggy", "Peggy Carter"),
    ("rupert", "Rupert Giles"),
    ("sybil", "Sybil Fawlty"),
    ("trent", "Trent Reznor"),
    ("victor", "Victor Frankenstein"),
    ("walter", "Walter White"),
    ("zoe", "Zoe Washburne"),
]
SAMPLE_ITEMS = [
    ("Notebook", "A5, dotted, 120 pages"),
    ("Coffee grinder", "Burr grinder, 40 settings"),
    ("Bicycle", "Steel frame touring bike"),
    ("Headphones", "Closed-back, wired"),
    ("Houseplant", "Monstera deliciosa"),
    ("Board game", "Two to five players"),
    ("Camera", "35 mm film rangefinder"),
    ("Tent", "Two-person, three-season"),
]
MAX_RETRIES = 6
MAX_WAIT_SECONDS = 65.0


class SeedError(Exception):
    pass


@dataclass
class SeedReport:
    created_users: list[str] = field(default_factory=list)
    existing_users: list[str] = field(default_factory=list)
    skipped_users: list[str] = field(default_factory=list)
    items: int = 0


def generated_password() -> str:
    # Random, and always satisfying the default policy (upper, lower, digit, special).
    return f"Seed-{secrets.token_urlsafe(12)}-9a"


async def _send(
    client: httpx.AsyncClient, method: str, url: str, *, sleep: Any = asyncio.sleep, **kwargs: Any
) -> httpx.Response:
    """One request, waiting out 429/503 answers (bounded)."""
    for _ in range(MAX_RETRIES):
        response = await client.request(method, url, **kwargs)
        if response.status_code not in (429, 503):
            return response
        try:
            wait = float(response.headers.get("Retry-After", "1"))
        except ValueError:
            wait = 1.0
        await sleep(min(max(wait, 0.1), MAX_WAIT_SECONDS))
    return response


async def seed(
    client: httpx.AsyncClient,
    *,
    users: int,
    items_per_user: int,
    password: str,
    sleep: Any = asyncio.sleep,
) -> SeedReport:
    """Create ``users`` sample users with ``items_per_user`` items each via ``client``
    (whose ``base_url`` is the gateway)."""
    report = SeedReport()
    for username, full_name in SAMPLE_PEOPLE[:users]:
        email = f"{username}@example.com"
        response = await _send(
            client,
            "POST",
            "/auth/register",
            json={
                "username": username,
                "email": email,
                "password": password,
                "full_name": full_name,
            },
            sleep=sleep,
        )
        if response.status_code == 200:
            report.created_users.append(username)
        elif response.status_code == 400 and response.json().get("code") in (
            "username_taken",
            "email_taken",
        ):
            report.existing_users.append(username)
        else:
            raise SeedError(f"register {username}: HTTP {response.status_code} {response.text}")

        response = await _send(
            client,
            "POST",
            "/auth/token",
            data={"username": username, "password": password},
            sleep=sleep,
        )
        if response.status_code != 200:
            # An existing user with another password: leave it alone.
            report.skipped_users.append(username)
            continue
        token = response.json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        for index in range(items_per_user):
            title, description = SAMPLE_ITEMS[index % len(SAMPLE_ITEMS)]
            response = await _send(
                client,
                "POST",
                "/items/",
                json={
                    "title": f"{full_name.split()[0]}'s {title.lower()}",
                    "description": description,
                },
                headers=headers,
                sleep=sleep,
            )
            if response.status_code not in (200, 201):
                raise SeedError(f"create item for {username}: HTTP {response.status_code}")
            report.items += 1
    return report


def _password(args: argparse.Namespace) -> tuple[str, bool]:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n"), False
    if os.environ.get("AUTH_SEED_PASSWORD"):
        return os.environ["AUTH_SEED_PASSWORD"], False
    return generated_password(), True


def main(args: argparse.Namespace) -> int:
    if not 1 <= args.users <= len(SAMPLE_PEOPLE):
        print(f"--users must be between 1 and {len(SAMPLE_PEOPLE)}", file=sys.stderr)
        return 2
    if not 0 <= args.items_per_user <= 50:
        print("--items-per-user must be between 0 and 50", file=sys.stderr)
        return 2
    password, generated = _password(args)

    async def go() -> SeedReport:
        async with httpx.AsyncClient(base_url=args.base_url, timeout=args.timeout) as client:
            return await seed(
                client, users=args.users, items_per_user=args.items_per_user, password=password
            )

    try:
        report = asyncio.run(go())
    except (SeedError, httpx.HTTPError) as exc:
        print(f"auth-service seed: {exc}", file=sys.stderr)
        return 1
    print(
        f"users created: {', '.join(report.created_users) or '-'}; "
        f"already present: {', '.join(report.existing_users) or '-'}; "
        f"skipped (other password): {', '.join(report.skipped_users) or '-'}; "
        f"items created: {report.items}"
    )
    if generated and report.created_users:
        # Printed once so the sample accounts can be used; they are sample data only.
        print(f"sample users' password: {password}")
    return 0
