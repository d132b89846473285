"""An async cache of a JWKS document, fetched with httpx.

PyJWT's ``PyJWKClient`` is synchronous and would block the event loop, so this module does
the fetching itself and hands PyJWT only parsed public keys.

Behaviour (ARCHITECTURE.md, "Tokens"):

* the document is cached for its ``Cache-Control: max-age`` (clamped to sane bounds);
* an unknown ``kid`` triggers at most one refetch per ``refresh_cooldown`` seconds, and
  concurrent callers share that one fetch (single flight), so a flood of garbage ``kid``s
  costs auth-service at most one request per cooldown;
* a known ``kid`` whose cache entry has expired is answered at once while one background
  fetch revalidates the document (stale-while-revalidate), so a slow JWKS endpoint never slows
  requests that carry known keys;
* when a fetch fails (network error, non-200, garbage, oversize, timeout, a document without
  one usable key) the keys already held keep serving (stale-if-error), and the cooldown
  applies to the next attempt;
* the URL comes only from configuration; redirects are not followed; the fetch has a total
  deadline and a response-size cap; only RSA signing keys of at least 2048 bits are accepted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt import PyJWK

logger = logging.getLogger("svckit.jwks")

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
MIN_RSA_BITS = 2048


class KeysUnavailable(Exception):
    """No verification keys are held and none could be fetched."""


def parse_max_age(cache_control: str | None) -> int | None:
    """The ``max-age`` of a ``Cache-Control`` header in seconds.

    ``0`` for ``no-store`` / ``no-cache``, ``None`` when the header says nothing about it.
    """
    if not cache_control:
        return None
    lowered = cache_control.lower()
    if "no-store" in lowered or "no-cache" in lowered:
        return 0
    match = _MAX_AGE.search(cache_control)
    return int(match.group(1)) if match else None


def parse_jwks(document: Any) -> dict[str, RSAPublicKey]:
    """The usable RS256 public keys of a JWKS document, by ``kid``.

    Keys that are not RSA signature keys, are shorter than 2048 bits, carry private members,
    lack a ``kid`` or repeat one are left out. A document that is not a JWKS raises
    ``ValueError``.
    """
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document")
    keys: dict[str, RSAPublicKey] = {}
    seen: set[str] = set()
    for jwk in document["keys"]:
        if not isinstance(jwk, Mapping):
            continue
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid or kid in seen:
            if isinstance(kid, str):
                keys.pop(kid, None)  # an ambiguous kid verifies nothing
            continue
        seen.add(kid)
        if (
            jwk.get("kty") != "RSA"
            or jwk.get("use", "sig") != "sig"
            or jwk.get("alg", "RS256") != "RS256"
            or _PRIVATE_MEMBERS & set(jwk)
        ):
            continue
        try:
            key = PyJWK(dict(jwk), algorithm="RS256").key
        except Exception as exc:  # PyJWT raises several unrelated types; one bad key spoils none
            logger.warning("JWKS key ignored", extra={"kid": kid, "error": type(exc).__name__})
            continue
        if not isinstance(key, RSAPublicKey) or key.key_size < MIN_RSA_BITS:
            continue
        keys[kid] = key
    return keys


class JWKSCache:
    """Public keys of one issuer, fetched from its JWKS URL and cached.

    Create it in the app's lifespan and ``await aclose()`` on shutdown. All times are in
    seconds; ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient | None = None,
        default_max_age: float = 300.0,
        min_max_age: float = 5.0,
        max_max_age: float = 86_400.0,
        refresh_cooldown: float = 10.0,
        timeout: float = 3.0,
        max_bytes: int = 256 * 1024,
        clock: Callable[[], float] = time.monotonic,
        headers: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        self.url = url
        self._own_client = client is None
        # trust_env=False: an internal URL must not be routed through a proxy from the env.
        self._client = client or httpx.AsyncClient(trust_env=False, follow_redirects=False)
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._default_max_age = default_max_age
        self._min_max_age = min_max_age
        self._max_max_age = max_max_age
        self._cooldown = refresh_cooldown
        self._clock = clock
        self._headers = headers
        self._keys: dict[str, RSAPublicKey] = {}
        self._expires_at = float("-inf")
        self._last_attempt = float("-inf")
        self._inflight: asyncio.Task[bool] | None = None
        self.fetch_count = 0
        self.fetch_failures = 0

    @property
    def has_keys(self) -> bool:
        return bool(self._keys)

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def _may_fetch(self) -> bool:
        return self._clock() - self._last_attempt >= self._cooldown

    async def get_key(self, kid: str) -> RSAPublicKey | None:
        """The key for ``kid``, refetching when the cache is stale or the kid is unknown.

        Returns ``None`` for a kid the issuer does not publish. Raises :class:`KeysUnavailable`
        when no keys at all are held and none can be fetched.
        """
        key = self._keys.get(kid)
        if key is not None:
            if self._clock() >= self._expires_at and self._inflight is None and self._may_fetch():
                # Stale but known: answer now, revalidate in the background, so a slow or
                # failing JWKS endpoint never slows down requests with known keys.
                self._start_fetch()
            return key
        if self._may_fetch() or self._inflight is not None:
            await self.refresh()
            key = self._keys.get(kid)
        if key is None and not self._keys:
            raise KeysUnavailable("no verification keys available")
        return key

    @property
    def refreshing(self) -> bool:
        """Whether a fetch (possibly a background revalidation) is in flight."""
        return self._inflight is not None

    async def wait_refreshed(self) -> None:
        """Wait for the fetch in flight, if any, without starting one (tests, shutdown)."""
        task = self._inflight
        if task is not None:
            await asyncio.shield(task)

    async def refresh(self) -> bool:
        """Fetch the document now, sharing one fetch among concurrent callers.

        Returns whether the fetch succeeded; on failure the keys already held are kept.
        """
        task = self._inflight or self._start_fetch()
        # shield: one caller being cancelled must not cancel the fetch the others wait on.
        return await asyncio.shield(task)

    def _start_fetch(self) -> asyncio.Task[bool]:
        task = asyncio.create_task(self._fetch())
        task.add_done_callback(self._clear_inflight)
        self._inflight = task
        return task

    def _clear_inflight(self, task: asyncio.Task[bool]) -> None:
        if self._inflight is task:
            self._inflight = None

    async def _fetch(self) -> bool:
        self._last_attempt = self._clock()
        self.fetch_count += 1
        try:
            # httpx's timeout bounds each read, not the whole exchange: a server trickling
            # bytes would hold every unknown-kid caller, so the deadline covers it all.
            async with asyncio.timeout(self._timeout):
                keys, max_age = await self._download()
        except Exception as exc:  # any failure: keep serving the keys already held
            self.fetch_failures += 1
            logger.warning(
                "JWKS fetch failed; keeping %d cached keys",
                len(self._keys),
                extra={"jwks_url": self.url, "error": type(exc).__name__, "reason": str(exc)},
            )
            return False
        age = self._default_max_age if max_age is None else float(max_age)
        age = min(max(age, self._min_max_age), self._max_max_age)
        self._keys = keys
        self._expires_at = self._clock() + age
        logger.info("JWKS fetched", extra={"jwks_url": self.url, "kids": sorted(keys)})
        return True

    async def _download(self) -> tuple[dict[str, RSAPublicKey], int | None]:
        headers = {"Accept": "application/json", **(self._headers() if self._headers else {})}
        async with self._client.stream(
            "GET", self.url, headers=headers, timeout=self._timeout, follow_redirects=False
        ) as response:
            if response.status_code != 200:
                raise ValueError(f"JWKS answered HTTP {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self._max_bytes:
                raise ValueError("JWKS response exceeds the size cap")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self._max_bytes:
                    raise ValueError("JWKS response exceeds the size cap")
            keys = parse_jwks(json.loads(body))
            if not keys:
                # Keys are rotated by publishing a new one, never by publishing none: an empty
                # or wholly unusable document is a fault upstream, not a reason to drop keys.
                raise ValueError("JWKS document holds no usable key")
            return keys, parse_max_age(response.headers.get("cache-control"))

    async def aclose(self) -> None:
        task = self._inflight
        if task is not None:
            task.cancel()
            await asyncio.wait({task})  # let it unwind; its result no longer matters
        if self._own_client:
            await self._client.aclose()
