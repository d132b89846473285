"""Access-token checks on top of svckit's verifier: a verified-token cache, deleted users and
revoked tokens.

``svckit.bearer`` calls ``app.state.token_verifier.verify(token)``; the verifier kept there is
a :class:`CachingTokenVerifier`, so the ``Claims`` dependency gets both behaviours for free.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from svckit.db import Pool, is_connection_error
from svckit.tokens import AccessClaims, InvalidToken, KeySource, TokenVerifier

logger = logging.getLogger("items_service.tokens")


class DeletedUsers:
    """Ids of deleted users, held in memory so the per-request check is a set lookup.

    Loaded from ``deleted_users`` at start, extended at once by this process's event consumer
    and, for deletions applied by other replicas' consumers, by :meth:`refresh` every few
    seconds. A deletion therefore takes effect here within one refresh interval.
    """

    # Rows are stamped with their transaction's start time, so a slow transaction can commit a
    # stamp older than one already seen; re-reading this window back catches such rows.
    OVERLAP = timedelta(seconds=60)

    def __init__(self) -> None:
        self._ids: set[int] = set()
        self._seen_until: datetime | None = None
        self.loaded = False

    def __contains__(self, user_id: int) -> bool:
        return user_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, user_id: int) -> None:
        self._ids.add(user_id)

    async def refresh(self, db: Pool) -> None:
        """Read the deletions recorded since the last refresh (all of them the first time)."""
        since = None if self._seen_until is None else self._seen_until - self.OVERLAP
        rows = await db.fetch(
            "SELECT user_id, recorded_at FROM deleted_users"
            " WHERE $1::timestamptz IS NULL OR recorded_at >= $1::timestamptz",
            since,
        )
        for row in rows:
            self._ids.add(row["user_id"])
            if self._seen_until is None or row["recorded_at"] > self._seen_until:
                self._seen_until = row["recorded_at"]
        self.loaded = True

    async def keep_fresh(self, db: Pool, interval: float) -> None:
        """Refresh forever, every ``interval`` seconds; failures are logged and retried."""
        while True:
            try:
                await self.refresh(db)
            except Exception as exc:
                level = logging.WARNING if is_connection_error(exc) else logging.ERROR
                logger.log(
                    level, "deleted users refresh failed", extra={"error": type(exc).__name__}
                )
            await asyncio.sleep(interval)


class RevokedTokens:
    """``jti``s of revoked access tokens, in memory until the tokens expire.

    Like :class:`DeletedUsers`: loaded from ``revoked_tokens`` at start (so a restart keeps
    refusing them), extended at once by this process's event consumer and, for revocations
    applied by other replicas, by :meth:`refresh` every second or so.
    """

    OVERLAP = timedelta(seconds=60)
    # Rows are deleted this long after the token expired (verifiers' leeway is at most 60 s).
    PRUNE_AFTER = timedelta(minutes=5)

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._expiry: dict[str, float] = {}
        self._seen_until: datetime | None = None
        self._clock = clock
        self.loaded = False

    def __contains__(self, jti: str) -> bool:
        return jti in self._expiry

    def __len__(self) -> int:
        return len(self._expiry)

    def add(self, jti: str, expires_at: float) -> None:
        self._expiry[jti] = expires_at

    def _forget_expired(self) -> None:
        horizon = self._clock() - self.PRUNE_AFTER.total_seconds()
        for jti in [j for j, exp in self._expiry.items() if exp < horizon]:
            del self._expiry[jti]

    async def refresh(self, db: Pool) -> None:
        """Read the revocations recorded since the last refresh (all live ones the first time)."""
        since = None if self._seen_until is None else self._seen_until - self.OVERLAP
        rows = await db.fetch(
            "SELECT jti, expires_at, recorded_at FROM revoked_tokens"
            " WHERE ($1::timestamptz IS NULL OR recorded_at >= $1::timestamptz)"
            " AND expires_at > now() - $2::interval",
            since,
            self.PRUNE_AFTER,
        )
        for row in rows:
            self._expiry[row["jti"]] = row["expires_at"].timestamp()
            if self._seen_until is None or row["recorded_at"] > self._seen_until:
                self._seen_until = row["recorded_at"]
        self._forget_expired()
        self.loaded = True

    async def prune(self, db: Pool) -> None:
        await db.fetchval(
            "DELETE FROM revoked_tokens WHERE expires_at < now() - $1::interval", self.PRUNE_AFTER
        )

    async def keep_fresh(self, db: Pool, interval: float, *, prune_every: int = 300) -> None:
        """Refresh forever, every ``interval`` seconds (and prune the table now and then)."""
        rounds = 0
        while True:
            try:
                await self.refresh(db)
                rounds += 1
                if rounds % prune_every == 0:
                    await self.prune(db)
            except Exception as exc:
                level = logging.WARNING if is_connection_error(exc) else logging.ERROR
                logger.log(
                    level, "revoked tokens refresh failed", extra={"error": type(exc).__name__}
                )
            await asyncio.sleep(interval)


@dataclass(slots=True)
class _Verified:
    claims: AccessClaims
    kid: str
    key: RSAPublicKey
    valid_until: float


class CachingTokenVerifier(TokenVerifier):
    """A :class:`TokenVerifier` that remembers verified tokens and refuses deleted users and
    revoked tokens.

    A verified token is kept (keyed by the token string, in a bounded LRU) until its ``exp``
    plus the leeway, so repeated calls with one token skip the RSA check. A hit still asks the
    key source for the token's ``kid`` and must get the very key object that verified it: once
    the JWKS is refetched without that key (revoked), or with new key objects, the token is
    verified afresh.
    """

    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        leeway: int = 30,
        deleted_users: DeletedUsers | None = None,
        revoked_tokens: RevokedTokens | None = None,
        cache_size: int = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(keys, issuer=issuer, audience=audience, leeway=leeway)
        self._key_source = keys
        self._deleted = deleted_users if deleted_users is not None else DeletedUsers()
        self._revoked = revoked_tokens if revoked_tokens is not None else RevokedTokens()
        self._cache: OrderedDict[str, _Verified] = OrderedDict()
        self._cache_size = cache_size
        self._clock = clock
        self.hits = 0
        self.misses = 0

    async def verify(self, token: str) -> AccessClaims:
        claims = await self._cached(token)
        if claims is None:
            self.misses += 1
            # svckit.tokens already refuses a ``sub`` beyond a bigint.
            claims = await super().verify(token)
            await self._remember(token, claims)
        else:
            self.hits += 1
        if claims.token_id is not None and claims.token_id in self._revoked:
            raise InvalidToken("the token was revoked")
        if not claims.is_machine and claims.user_id in self._deleted:
            raise InvalidToken("the token's user was deleted")
        return claims

    async def _cached(self, token: str) -> AccessClaims | None:
        entry = self._cache.get(token)
        if entry is None:
            return None
        if entry.valid_until <= self._clock() or await self._key_source.get_key(entry.kid) is not (
            entry.key
        ):
            del self._cache[token]
            return None
        self._cache.move_to_end(token)
        return entry.claims

    async def _remember(self, token: str, claims: AccessClaims) -> None:
        if self._cache_size <= 0:
            return
        # The header was checked by verify(); reading it again costs far less than RSA.
        kid = jwt.get_unverified_header(token)["kid"]
        key = await self._key_source.get_key(kid)
        if key is None:
            return
        self._cache[token] = _Verified(claims, kid, key, claims.expires_at + self.leeway)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
