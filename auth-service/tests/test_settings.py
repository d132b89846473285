import os
from typing import Any

import pytest
from pydantic import ValidationError

from auth_service.settings import Settings

REAL_PASSPHRASE = "a-long-and-random-passphrase-1"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AUTH_") or name in ("REDIS_URL", "WEB_CONCURRENCY"):
            monkeypatch.delenv(name)


def test_defaults_match_the_documented_conventions() -> None:
    settings = Settings()
    assert settings.database_url == "postgresql+asyncpg://postgres@127.0.0.1:5432/auth"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.issuer == "http://127.0.0.1:8080"
    assert settings.audience == "api"
    assert settings.access_token_ttl_seconds == 1800
    assert settings.refresh_token_ttl_seconds == 1_209_600
    assert settings.jwks_max_age_seconds == 300
    assert settings.bcrypt_rounds == 12
    assert settings.hashing_concurrency is None
    assert settings.hashing_queue_timeout_seconds == 2.0
    assert settings.items_url == "http://127.0.0.1:8002"
    assert settings.items_timeout_seconds == 1.0
    assert settings.events_stream == "user-events"


def test_reads_the_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_DATABASE_URL", "postgresql://app@db:5432/auth")
    monkeypatch.setenv("AUTH_ISSUER", "https://api.example.com")
    monkeypatch.setenv("AUTH_ACCESS_TOKEN_TTL_SECONDS", "600")
    monkeypatch.setenv("AUTH_CORS_ORIGINS", '["https://app.example.com"]')
    settings = Settings()
    assert settings.database_url == "postgresql+asyncpg://app@db:5432/auth"
    assert settings.issuer == "https://api.example.com"
    assert settings.access_token_ttl_seconds == 600
    assert settings.cors_origins == ["https://app.example.com"]


def test_redis_url_is_shared_and_the_prefixed_name_overrides(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://shared:6379/1")
    assert Settings().redis_url == "redis://shared:6379/1"
    monkeypatch.setenv("AUTH_REDIS_URL", "redis://own:6379/2")
    assert Settings().redis_url == "redis://own:6379/2"


def test_fields_can_be_passed_by_name() -> None:
    assert Settings(redis_url="redis://x:1/0").redis_url == "redis://x:1/0"


def test_rejects_a_non_postgres_database_url() -> None:
    with pytest.raises(ValidationError):
        Settings(database_url="sqlite:///auth.db")


@pytest.mark.parametrize("passphrase", [None, "changeme", "secret", "  Password  "])
def test_production_refuses_a_missing_or_placeholder_passphrase(passphrase: str | None) -> None:
    with pytest.raises(ValidationError, match="AUTH_KEY_PASSPHRASE"):
        Settings(environment="production", key_passphrase=passphrase)


def test_production_refuses_a_short_passphrase() -> None:
    with pytest.raises(ValidationError, match="at least 16"):
        Settings(environment="production", key_passphrase="short-but-real")


def test_production_accepts_a_real_passphrase() -> None:
    settings = Settings(environment="production", key_passphrase=REAL_PASSPHRASE)
    assert settings.passphrase_bytes() == REAL_PASSPHRASE.encode()


def test_development_needs_no_passphrase() -> None:
    assert Settings(environment="development").passphrase_bytes() is None


def test_activation_delay_must_cover_the_jwks_max_age() -> None:
    with pytest.raises(ValidationError, match="KEY_ACTIVATION_DELAY"):
        Settings(jwks_max_age_seconds=300, key_activation_delay_seconds=299)
    default = Settings(jwks_max_age_seconds=300, key_reload_seconds=30)
    assert default.activation_delay_seconds == 330  # a stale replica's JWKS is covered too
    assert Settings(key_activation_delay_seconds=900).activation_delay_seconds == 900


def test_key_retention_covers_token_lifetime_reload_and_leeway() -> None:
    settings = Settings(access_token_ttl_seconds=600, key_reload_seconds=30)
    assert settings.key_retention_seconds == 600 + 30 + 60


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("bcrypt_rounds", 3),
        ("key_size", 1024),
        ("hashing_concurrency", 0),
        ("token_leeway_seconds", 61),
        ("login_throttle_max_failures", 0),
        ("password_min_length", 0),
    ],
)
def test_unsafe_values_are_refused(name: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        Settings(**{name: value})


def test_hashing_threads_default_to_the_workers_share_of_the_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cores = len(os.sched_getaffinity(0))
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    assert Settings().hashing_threads == cores
    monkeypatch.setenv("WEB_CONCURRENCY", str(cores))
    assert Settings().hashing_threads == 1
    monkeypatch.setenv("WEB_CONCURRENCY", str(cores * 4))
    assert Settings().hashing_threads == 1  # never none
    monkeypatch.setenv("AUTH_HASHING_CONCURRENCY", "3")
    assert Settings().hashing_threads == 3
