"""Everything the app builds in its lifespan (and closes on shutdown), in one object.

Endpoints take its parts through the aliases in :mod:`auth_service.deps` (``HasherDep``,
``KeyRingDep``, ``ClockDep`` ...) and hand services only the parts they use; nothing but the
app, ``deps`` and the request's session reads the whole object.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from auth_service.clock import Clock
from auth_service.db import Database
from auth_service.keys.ring import KeyRing
from auth_service.mail.outbox import MailMetrics, MailRelay
from auth_service.mail.smtp import SmtpConfig, SmtpSender
from auth_service.maintenance import Maintenance
from auth_service.mfa.sealing import SecretBox
from auth_service.outbox import OutboxRelay
from auth_service.password_policy import PasswordPolicy
from auth_service.passwords import PasswordHasher
from auth_service.recovery.service import RESET_REQUEST, prepare_password_reset
from auth_service.settings import Settings
from auth_service.superuser import ensure_first_superuser
from auth_service.throttle import LoginThrottle
from svckit.redis import close_redis
from svckit.tokens import TokenVerifier

logger = logging.getLogger("auth_service")


def create_redis(settings: Settings) -> Redis[str]:
    """A client that fails fast: a login must not hang while Redis is down (fail closed)."""
    return Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=1),
        health_check_interval=30,
        decode_responses=True,
    )


def create_smtp_sender(settings: Settings) -> SmtpSender | None:
    if settings.smtp_url is None:
        return None
    return SmtpSender(
        SmtpConfig.from_url(
            settings.smtp_url.get_secret_value(), timeout=settings.smtp_timeout_seconds
        )
    )


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    database: Database
    redis: Redis[str]
    http: httpx.AsyncClient
    hasher: PasswordHasher
    policy: PasswordPolicy
    keyring: KeyRing
    throttle: LoginThrottle
    client_throttle: LoginThrottle
    mfa_throttle: LoginThrottle
    totp_box: SecretBox
    verifier: TokenVerifier
    relay: OutboxRelay
    mail: MailRelay
    maintenance: Maintenance
    owns_database: bool = True
    background: bool = field(default=False)

    @classmethod
    async def start(
        cls,
        settings: Settings,
        *,
        clock: Clock,
        database: Database | None = None,
        registry: CollectorRegistry | None = None,
    ) -> Runtime:
        owns_database = database is None
        db = database or Database.from_settings(settings)
        redis = create_redis(settings)
        http = httpx.AsyncClient(follow_redirects=False)
        hasher = PasswordHasher(
            rounds=settings.bcrypt_rounds,
            concurrency=settings.hashing_threads,
            queue_timeout=settings.hashing_queue_timeout_seconds,
        )
        retention = timedelta(seconds=settings.key_retention_seconds)
        keyring = KeyRing(
            db,
            passphrase=settings.passphrase_bytes(),
            key_bits=settings.key_size,
            retention=retention,
            reload_interval=settings.key_reload_seconds,
            clock=clock,
        )
        runtime = cls(
            settings=settings,
            clock=clock,
            database=db,
            redis=redis,
            http=http,
            hasher=hasher,
            policy=PasswordPolicy.from_settings(settings),
            keyring=keyring,
            throttle=LoginThrottle(
                redis,
                max_failures=settings.login_throttle_max_failures,
                window=settings.login_throttle_window_seconds,
                lockout=settings.login_throttle_lockout_seconds,
                clock=clock,
            ),
            # Failed client authentications, throttled per client id like logins per account.
            client_throttle=LoginThrottle(
                redis,
                max_failures=settings.login_throttle_max_failures,
                window=settings.login_throttle_window_seconds,
                lockout=settings.login_throttle_lockout_seconds,
                clock=clock,
                prefix="auth:client",
            ),
            # Wrong second-factor codes, per account (auth_service.mfa.service.throttle_key).
            mfa_throttle=LoginThrottle(
                redis,
                max_failures=settings.login_throttle_max_failures,
                window=settings.login_throttle_window_seconds,
                lockout=settings.login_throttle_lockout_seconds,
                clock=clock,
                prefix="auth:mfa",
            ),
            totp_box=await SecretBox.from_passphrase(settings.passphrase_bytes()),
            verifier=TokenVerifier(
                keyring,
                issuer=settings.issuer,
                audience=settings.audience,
                leeway=settings.token_leeway_seconds,
            ),
            relay=OutboxRelay(
                db,
                redis,
                stream=settings.events_stream,
                batch_size=settings.outbox_batch_size,
                interval=settings.outbox_relay_interval_seconds,
                clock=clock,
            ),
            mail=MailRelay(
                db,
                create_smtp_sender(settings),
                mail_from=settings.mail_from,
                batch_size=settings.mail_batch_size,
                max_attempts=settings.mail_max_attempts,
                retry_base=settings.mail_retry_base_seconds,
                retry_max=settings.mail_retry_max_seconds,
                interval=settings.outbox_relay_interval_seconds,
                clock=clock,
                metrics=MailMetrics(registry or CollectorRegistry()),
                preparers={
                    RESET_REQUEST: functools.partial(prepare_password_reset, settings=settings)
                },
            ),
            maintenance=Maintenance(
                db,
                retention=retention,
                interval=settings.maintenance_interval_seconds,
                clock=clock,
            ),
            owns_database=owns_database,
        )
        try:
            await hasher.start()
            await keyring.start()
            await ensure_first_superuser(settings, db, hasher, clock=clock)
        except BaseException:
            await runtime.close()
            raise
        if settings.background_tasks:
            runtime.relay.start()
            runtime.mail.start()
            runtime.maintenance.start()
            runtime.background = True
        return runtime

    def wake_relay(self) -> None:
        """Publish outbox rows now (called after the deleting transaction committed)."""
        if self.background:
            self.relay.wake()

    def wake_mail(self) -> None:
        """Send queued mail now (called after the queuing transaction committed)."""
        if self.background:
            self.mail.wake()

    async def close(self) -> None:
        await self.relay.stop()
        await self.mail.stop()
        await self.maintenance.stop()
        await self.http.aclose()
        await close_redis(self.redis)
        self.hasher.close()
        if self.owns_database:
            await self.database.close()
