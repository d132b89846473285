"""The settings base class every service extends with its own environment prefix."""

from __future__ import annotations

import logging
from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Values that must never protect a production deployment.
PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "changethis", "secret", "password", "dev", "development"}
)


def asyncpg_url(url: str) -> str:
    """Normalise a PostgreSQL URL to SQLAlchemy's asyncpg dialect."""
    url = url.strip()
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("must be a PostgreSQL URL (postgresql://...)")


class ServiceSettings(BaseSettings):
    """Settings every service shares. Subclasses set ``env_prefix`` (``AUTH_``, ``ITEMS_``)."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    environment: Literal["development", "test", "production"] = "development"
    log_level: str = "INFO"
    log_json: bool = True
    access_log: bool = True

    # FastAPI's native OpenTelemetry (spans, metrics and logs through the global providers an
    # OpenTelemetry SDK installs). Off, no request asks OpenTelemetry whether a provider is
    # configured (a few per cent of a fast request's CPU); Prometheus metrics stay on.
    opentelemetry: bool = False

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=5, ge=0, le=200)
    db_connect_timeout_seconds: float = Field(default=3.0, gt=0)
    db_statement_timeout_ms: int = Field(default=15_000, ge=0)

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in logging.getLevelNamesMapping():
            raise ValueError("must be a logging level name (DEBUG, INFO, WARNING, ERROR)")
        return level

    @field_validator("database_url")
    @classmethod
    def _normalise_database_url(cls, value: str) -> str:
        return asyncpg_url(value)

    @property
    def production(self) -> bool:
        return self.environment == "production"

    def secrets_to_check(self) -> dict[str, SecretStr | None]:
        """Secrets that must be set to a real value in production. Override to add more."""
        return {}

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Self:
        if not self.production:
            return self
        bad = [
            name
            for name, value in self.secrets_to_check().items()
            if value is None or value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS
        ]
        if bad:
            raise ValueError(
                "production mode refuses placeholder or missing secrets: " + ", ".join(bad)
            )
        return self
