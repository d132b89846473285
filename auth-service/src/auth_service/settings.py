"""auth-service settings, read from ``AUTH_*`` environment variables.

``REDIS_URL`` is shared with the other services (``AUTH_REDIS_URL`` overrides it). Nothing is
read at import time: the app factory and the CLI construct :class:`Settings` explicitly.
"""

from __future__ import annotations

import os
from typing import Self

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from auth_service.mail.smtp import SmtpConfig
from svckit.settings import PLACEHOLDER_SECRETS, ServiceSettings
from svckit.tokens import CLIENT_ID_PATTERN

# The longest leeway any verifier of our tokens may apply (svckit.tokens.MAX_LEEWAY_SECONDS).
MAX_VERIFIER_LEEWAY_SECONDS = 60


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="AUTH_",
        env_file=None,
        extra="ignore",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        # A refused value may be a secret (a password inside AUTH_SMTP_URL): never echo it.
        hide_input_in_errors=True,
    )

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/auth"
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("AUTH_REDIS_URL", "REDIS_URL"),
    )
    redis_timeout_seconds: float = Field(default=0.5, gt=0, le=10)

    # Tokens
    issuer: str = "http://127.0.0.1:8080"
    audience: str = "api"
    access_token_ttl_seconds: int = Field(default=1800, ge=30, le=86_400)
    refresh_token_ttl_seconds: int = Field(default=1_209_600, ge=60, le=31_536_000)
    token_leeway_seconds: int = Field(default=30, ge=0, le=MAX_VERIFIER_LEEWAY_SECONDS)

    # Signing keys
    jwks_max_age_seconds: int = Field(default=300, ge=0, le=86_400)
    key_passphrase: SecretStr | None = None
    key_activation_delay_seconds: int | None = Field(default=None, ge=0, le=7 * 86_400)
    key_size: int = Field(default=2048, ge=2048, le=8192)
    key_reload_seconds: int = Field(default=5, ge=1, le=3600)

    # Passwords
    bcrypt_rounds: int = Field(default=12, ge=4, le=20)
    hashing_concurrency: int | None = Field(default=None, ge=1, le=64)
    hashing_queue_timeout_seconds: float = Field(default=2.0, gt=0, le=120)
    # uvicorn's own variable for its worker count; the hashing default divides the cores by it
    web_concurrency: int = Field(
        default=1, ge=1, le=1024, validation_alias=AliasChoices("WEB_CONCURRENCY")
    )
    password_min_length: int = Field(default=8, ge=1, le=128)
    password_require_uppercase: bool = True
    password_require_lowercase: bool = True
    password_require_digit: bool = True
    password_require_special: bool = True
    password_blocklist: bool = True

    # Per-account login throttle
    login_throttle_max_failures: int = Field(default=5, ge=1, le=1000)
    login_throttle_window_seconds: int = Field(default=300, ge=1, le=86_400)
    login_throttle_lockout_seconds: int = Field(default=300, ge=1, le=86_400)

    # Second factor (auth_service.mfa): the issuer name authenticator apps show, and how long
    # an mfa_token (a password login waiting for its code) stays good
    mfa_issuer: str = Field(default="auth-service", min_length=1, max_length=64, pattern=r"^[^:]+$")
    mfa_token_ttl_seconds: int = Field(default=300, ge=30, le=3600)

    # /users/me composition
    items_url: str = "http://127.0.0.1:8002"
    items_timeout_seconds: float = Field(default=1.0, gt=0, le=30)

    # Outbox relay and periodic maintenance
    events_stream: str = Field(default="user-events", min_length=1, max_length=200)
    background_tasks: bool = True
    outbox_relay_interval_seconds: float = Field(default=1.0, gt=0, le=300)
    outbox_batch_size: int = Field(default=100, ge=1, le=10_000)
    maintenance_interval_seconds: float = Field(default=300.0, gt=0, le=86_400)
    # Return freed heap to the OS this often (glibc malloc_trim); 0 turns it off.
    memory_trim_seconds: float = Field(default=60.0, ge=0)

    cors_origins: list[str] = Field(default_factory=list)

    # OAuth2 (see auth_service.oauth): the client a password login names when it names none
    public_client_id: str = Field(default="first-party", pattern=CLIENT_ID_PATTERN)
    # The first administrator, created at start-up when no account has that name or email.
    first_superuser: str | None = None
    first_superuser_email: str | None = None
    first_superuser_password: SecretStr | None = None

    # Mail: delivery over SMTP through the mail outbox (auth_service.mail)
    # smtp://host:port (STARTTLS when offered), smtp+starttls:// (STARTTLS required),
    # smtps:// (TLS from the first byte); user:password@ for AUTH. Unset: mail stays queued.
    smtp_url: SecretStr | None = None
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    mail_from: str = Field(default="no-reply@localhost", min_length=3, max_length=254)
    mail_batch_size: int = Field(default=20, ge=1, le=1000)
    mail_max_attempts: int = Field(default=8, ge=1, le=100)
    mail_retry_base_seconds: float = Field(default=5.0, gt=0, le=3600)
    mail_retry_max_seconds: float = Field(default=600.0, gt=0, le=86_400)
    # Links in messages start with this (the public gateway URL); default: AUTH_ISSUER.
    public_url: str | None = Field(default=None, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
    reset_link_path: str = Field(default="/reset-password", pattern=r"^/[^\s?#]*$")
    verify_link_path: str = Field(default="/verify-email", pattern=r"^/[^\s?#]*$")

    # Account recovery and verification (auth_service.recovery)
    reset_token_ttl_seconds: int = Field(default=1800, ge=60, le=86_400)
    reset_throttle_max: int = Field(default=3, ge=1, le=1000)
    reset_throttle_window_seconds: int = Field(default=3600, ge=1, le=86_400)
    verify_token_ttl_seconds: int = Field(default=86_400, ge=60, le=30 * 86_400)
    verify_resend_max: int = Field(default=5, ge=1, le=1000)
    verify_resend_window_seconds: int = Field(default=3600, ge=1, le=86_400)
    require_verified_email: bool = False

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip():
            SmtpConfig.from_url(value.get_secret_value(), timeout=1)
            return value
        return None

    @model_validator(mode="after")
    def _check_key_schedule(self) -> Self:
        delay = self.key_activation_delay_seconds
        if delay is not None and delay < self.jwks_max_age_seconds:
            raise ValueError(
                "AUTH_KEY_ACTIVATION_DELAY_SECONDS must be at least AUTH_JWKS_MAX_AGE_SECONDS, "
                "so every cached JWKS holds a new key before it signs anything"
            )
        return self

    @field_validator(
        "first_superuser", "first_superuser_email", "first_superuser_password", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # compose passes ${AUTH_FIRST_SUPERUSER:-}: an empty variable means "none".
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @model_validator(mode="after")
    def _check_first_superuser(self) -> Self:
        values = (self.first_superuser, self.first_superuser_email, self.first_superuser_password)
        if any(v is not None for v in values) and not all(v is not None for v in values):
            raise ValueError(
                "AUTH_FIRST_SUPERUSER, AUTH_FIRST_SUPERUSER_EMAIL and "
                "AUTH_FIRST_SUPERUSER_PASSWORD are set together or not at all"
            )
        if self.production and self.first_superuser_password is not None:
            value = self.first_superuser_password.get_secret_value().strip().lower()
            if value in PLACEHOLDER_SECRETS:
                raise ValueError("AUTH_FIRST_SUPERUSER_PASSWORD is a placeholder")
        return self

    @model_validator(mode="after")
    def _check_production_passphrase(self) -> Self:
        passphrase = self.key_passphrase
        if self.production and passphrase is not None and len(passphrase.get_secret_value()) < 16:
            raise ValueError("AUTH_KEY_PASSPHRASE must be at least 16 characters in production")
        return self

    def secrets_to_check(self) -> dict[str, SecretStr | None]:
        return {"AUTH_KEY_PASSPHRASE": self.key_passphrase}

    @property
    def link_base(self) -> str:
        """Where links in messages point: the configured public URL, never a request's Host."""
        return (self.public_url or self.issuer).rstrip("/")

    @property
    def hashing_threads(self) -> int:
        """Password hashes computed at once in this worker.

        ``AUTH_HASHING_CONCURRENCY``, else this worker's share of the CPU cores it may run on:
        bcrypt releases the GIL, so one hashing thread per core keeps the CPU busy, and more
        threads than cores only make every login slower.
        """
        if self.hashing_concurrency is not None:
            return self.hashing_concurrency
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return max(1, (cores or 1) // self.web_concurrency)

    @property
    def activation_delay_seconds(self) -> int:
        """How long a new key is published before it may sign (>= the JWKS max-age).

        By default the JWKS max-age plus the key reload interval: a replica may serve a JWKS
        up to one reload interval old, which a verifier may then cache for max-age.
        """
        if self.key_activation_delay_seconds is None:
            return self.jwks_max_age_seconds + self.key_reload_seconds
        return self.key_activation_delay_seconds

    @property
    def key_retention_seconds(self) -> int:
        """How long a key stays published after it stopped signing.

        Its last tokens live ``access_token_ttl_seconds``; a replica may keep signing with it
        until its next key reload; verifiers accept expired tokens for their leeway.
        """
        return self.access_token_ttl_seconds + self.key_reload_seconds + MAX_VERIFIER_LEEWAY_SECONDS

    def passphrase_bytes(self) -> bytes | None:
        if self.key_passphrase is None:
            return None
        value = self.key_passphrase.get_secret_value()
        return value.encode() if value else None
