"""The in-memory view of the signing keys that requests use.

:class:`KeyRing` loads the keys from the database and keeps them for ``reload_interval``
seconds, so replicas pick up rotated keys. Past that, the next caller starts a reload in the
background and goes on with the keys held (stale-while-revalidate): a request that already
holds a database connection (a refresh, inside its transaction) never waits for a second
one, which a small pool may not have until the first is returned. An unknown ``kid`` triggers
an early reload that the caller waits for (at most once per ``unknown_kid_cooldown``,
concurrent callers sharing one load). When the database cannot be read, the keys already held
keep working (stale-if-error).

It implements svckit's ``KeySource`` protocol, so the service verifies its own access tokens
(``/auth/me``, ``/users/*``) with ``svckit.tokens.TokenVerifier`` without HTTP to itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from auth_service.clock import Clock
from auth_service.db import Database
from auth_service.keys import material, schedule, store
from svckit.errors import ServiceError
from svckit.tokens import KeysUnavailable

logger = logging.getLogger("auth_service.keys")


class SigningUnavailable(ServiceError):
    """No key can sign right now (database unreachable at startup, or no active key)."""

    status_code = 503
    code = "signing_unavailable"
    detail = "Tokens cannot be issued right now; try again shortly"

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": "5"})


@dataclass(frozen=True, slots=True)
class LoadedKey:
    kid: str
    created_at: datetime
    activates_at: datetime
    retired_at: datetime | None
    public_key: RSAPublicKey
    jwk: dict[str, Any]
    private_pem: bytes | None
    encrypted: bool


class KeyRing:
    def __init__(
        self,
        database: Database,
        *,
        passphrase: bytes | None,
        key_bits: int,
        retention: timedelta,
        reload_interval: float,
        clock: Clock,
        unknown_kid_cooldown: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._database = database
        self._passphrase = passphrase
        self._key_bits = key_bits
        self.retention = retention
        self._reload_interval = reload_interval
        self._clock = clock
        self._cooldown = unknown_kid_cooldown
        self._monotonic = monotonic
        self._keys: list[LoadedKey] = []
        self._private: dict[str, RSAPrivateKey] = {}
        self._loaded_at = float("-inf")
        self._last_attempt = float("-inf")
        self._inflight: asyncio.Task[bool] | None = None
        self.load_count = 0

    # ------------------------------------------------------------------ loading

    async def start(self) -> None:
        """Create the first key if there is none, load the keys, check the signer decrypts.

        A database that is down is tolerated (requests needing keys answer 503 until it is
        back); a key that cannot be decrypted is a configuration error and raises.
        """
        try:
            await self._ensure_key()
        except material.KeyMaterialError:
            raise
        except Exception as exc:
            logger.warning(
                "signing keys not loaded at startup", extra={"error": type(exc).__name__}
            )
            return
        current = schedule.signer(self._keys, self._clock())
        if current is not None:
            await self._private_key(current)
        plain = [k.kid for k in self._keys if not k.encrypted and k.private_pem is not None]
        if self._passphrase and plain:
            logger.warning(
                "signing keys stored without encryption; run `auth-service reencrypt-keys`",
                extra={"kids": plain},
            )

    async def _ensure_key(self) -> None:
        async with self._database.transaction() as session:
            await store.ensure_signing_key(
                session, bits=self._key_bits, passphrase=self._passphrase, now=self._clock()
            )
        await self.reload()

    async def reload(self) -> bool:
        """Load the live keys now (one load shared by concurrent callers); keep them on error."""
        return await asyncio.shield(self._start_load())

    async def reloading(self) -> None:
        """Wait for a load in progress, if any (one started in the background included)."""
        task = self._inflight
        if task is not None:
            await asyncio.shield(task)

    def _start_load(self) -> asyncio.Task[bool]:
        task = self._inflight
        if task is None:
            task = asyncio.create_task(self._load())
            self._inflight = task
            task.add_done_callback(self._clear_inflight)
        return task

    def _clear_inflight(self, _task: asyncio.Task[bool]) -> None:
        self._inflight = None

    async def _load(self) -> bool:
        self._last_attempt = self._monotonic()
        self.load_count += 1
        try:
            async with self._database.transaction() as session:
                rows = await store.live_keys(session)
            keys = [
                LoadedKey(
                    kid=row.kid,
                    created_at=row.created_at,
                    activates_at=row.activates_at,
                    retired_at=row.retired_at,
                    public_key=(public := material.load_public_key(row.public_key_pem)),
                    jwk=material.public_jwk(row.kid, public),
                    private_pem=row.private_key_pem,
                    encrypted=row.encrypted,
                )
                for row in rows
            ]
        except Exception as exc:
            logger.warning(
                "signing keys could not be reloaded; keeping %d",
                len(self._keys),
                extra={"error": type(exc).__name__},
            )
            return False
        self._keys = keys
        live = {k.kid for k in keys}
        self._private = {kid: key for kid, key in self._private.items() if kid in live}
        self._loaded_at = self._monotonic()
        return True

    async def _refresh_if_stale(self) -> None:
        """Past ``reload_interval``: a reload in the background while keys are held (the
        caller goes on with them), one to wait for when none are."""
        now = self._monotonic()
        if (
            now - self._loaded_at >= self._reload_interval
            and now - self._last_attempt >= self._cooldown
        ):
            if self._keys:
                self._start_load()
            else:
                await self.reload()

    def _may_reload_early(self) -> bool:
        return self._monotonic() - self._last_attempt >= self._cooldown

    # ------------------------------------------------------------------ reading

    @property
    def keys(self) -> list[LoadedKey]:
        return list(self._keys)

    def published(self) -> list[LoadedKey]:
        return schedule.published(self._keys, self._clock(), self.retention)

    def has_signer(self) -> bool:
        return schedule.signer(self._keys, self._clock()) is not None

    async def get_key(self, kid: str) -> RSAPublicKey | None:
        """``KeySource``: the public key for ``kid`` if it is published now."""
        await self._refresh_if_stale()
        found = self._find_published(kid)
        if found is None and self._may_reload_early():
            await self.reload()
            found = self._find_published(kid)
        if found is None and not self._keys:
            raise KeysUnavailable("no signing keys loaded")
        return found.public_key if found else None

    def _find_published(self, kid: str) -> LoadedKey | None:
        return next((k for k in self.published() if k.kid == kid), None)

    async def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The JWKS document: every key that may verify a live token."""
        await self._refresh_if_stale()
        if not self._keys:
            if self._may_reload_early():
                await self.reload()
            if not self._keys:
                raise KeysUnavailable("no signing keys loaded")
        return {"keys": [k.jwk for k in self.published()]}

    async def signing_key(self) -> tuple[str, RSAPrivateKey]:
        """The ``kid`` and private key to sign with now; :class:`SigningUnavailable` (503)
        when there is none or it cannot be loaded."""
        await self._refresh_if_stale()
        current = schedule.signer(self._keys, self._clock())
        if current is None and self._may_reload_early():
            await self._ensure_key()
            current = schedule.signer(self._keys, self._clock())
        if current is None:
            logger.error("no signing key is active")
            raise SigningUnavailable()
        try:
            return current.kid, await self._private_key(current)
        except (KeysUnavailable, material.KeyMaterialError) as exc:
            logger.error("the signing key cannot be loaded", extra={"reason": str(exc)})
            raise SigningUnavailable() from None

    async def _private_key(self, key: LoadedKey) -> RSAPrivateKey:
        cached = self._private.get(key.kid)
        if cached is not None:
            return cached
        if key.private_pem is None:
            raise KeysUnavailable(f"the private half of key {key.kid} was erased")
        pem = key.private_pem
        private = await asyncio.to_thread(
            material.load_private_key, pem, self._passphrase, encrypted=key.encrypted
        )
        self._private[key.kid] = private
        return private
