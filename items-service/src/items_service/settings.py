"""items-service settings, read from ``ITEMS_*`` environment variables (``REDIS_URL`` too)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from svckit.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ITEMS_", validate_by_name=True)

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/items"

    # Token verification: keys come from auth-service's internal JWKS URL, never per request.
    jwks_url: str = "http://127.0.0.1:8001/.well-known/jwks.json"
    issuer: str = "http://127.0.0.1:8080"
    audience: str = "api"
    token_leeway_seconds: int = Field(default=30, ge=0, le=60)
    jwks_refresh_cooldown_seconds: float = Field(default=10.0, ge=0)
    jwks_timeout_seconds: float = Field(default=3.0, gt=0)
    # Verified tokens are remembered (until they expire) so repeated calls skip RSA.
    token_cache_size: int = Field(default=4096, ge=0, le=1_000_000)

    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("ITEMS_REDIS_URL", "REDIS_URL"),
    )

    # The user-events consumer (ARCHITECTURE.md, "Cross-service data").
    events_enabled: bool = True
    events_stream: str = Field(default="user-events", min_length=1)
    events_group: str = Field(default="items-service", min_length=1)
    events_dead_stream: str = Field(default="user-events:dead", min_length=1)
    # Empty: "<hostname>-<pid>", unique per process.
    events_consumer: str = ""
    events_block_seconds: float = Field(default=5.0, gt=0, le=60)
    events_batch_size: int = Field(default=100, ge=1, le=10_000)
    events_claim_idle_seconds: float = Field(default=60.0, gt=0)
    events_max_attempts: int = Field(default=5, ge=1)
    events_max_deliveries: int = Field(default=10, ge=1)
    events_backoff_max_seconds: float = Field(default=30.0, gt=0)

    # How often other replicas' user deletions are picked up from the database.
    deleted_users_refresh_seconds: float = Field(default=5.0, gt=0)
    # How often other replicas' token revocations are picked up (refused within 2 s).
    revoked_tokens_refresh_seconds: float = Field(default=1.0, gt=0, le=60)

    # Return freed heap to the OS this often (glibc malloc_trim); 0 turns it off.
    memory_trim_seconds: float = Field(default=60.0, ge=0)
