"""Settings come from ITEMS_* variables (and REDIS_URL), with no import-time side effects."""

from __future__ import annotations

import pytest

from items_service.settings import Settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_URL", "ITEMS_REDIS_URL", "ITEMS_DATABASE_URL", "ITEMS_JWKS_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.database_url == "postgresql+asyncpg://postgres@127.0.0.1:5432/items"
    assert settings.jwks_url == "http://127.0.0.1:8001/.well-known/jwks.json"
    assert settings.issuer == "http://127.0.0.1:8080"
    assert settings.audience == "api"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.events_stream == "user-events"
    assert settings.events_group == "items-service"
    assert settings.events_dead_stream == "user-events:dead"


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ITEMS_DATABASE_URL", "postgresql://u:p@db:5432/items")
    monkeypatch.setenv("ITEMS_TOKEN_LEEWAY_SECONDS", "10")
    monkeypatch.setenv("REDIS_URL", "redis://shared:6379/0")
    settings = Settings()
    assert settings.database_url == "postgresql+asyncpg://u:p@db:5432/items"
    assert settings.token_leeway_seconds == 10
    assert settings.redis_url == "redis://shared:6379/0"
    monkeypatch.setenv("ITEMS_REDIS_URL", "redis://own:6379/1")
    assert Settings().redis_url == "redis://own:6379/1"


def test_leeway_is_capped_at_60_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ITEMS_TOKEN_LEEWAY_SECONDS", "61")
    with pytest.raises(ValueError, match="token_leeway_seconds"):
        Settings()
