"""ServiceSettings: env prefixes, URL normalisation, placeholder secrets refused in production."""

from __future__ import annotations

import os

import pytest
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict

from svckit.settings import PLACEHOLDER_SECRETS, ServiceSettings, asyncpg_url


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_")

    signing_secret: SecretStr | None = None
    api_key: SecretStr = SecretStr("changeme")

    def secrets_to_check(self) -> dict[str, SecretStr | None]:
        return {"signing_secret": self.signing_secret, "api_key": self.api_key}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DEMO_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@h:5432/db", "postgresql+asyncpg://u:p@h:5432/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("  postgresql://u@h/db\n", "postgresql+asyncpg://u@h/db"),
        (
            "postgresql://postgres@/db?host=/run/pg/sock",
            "postgresql+asyncpg://postgres@/db?host=/run/pg/sock",
        ),
    ],
)
def test_database_url_is_normalised(given: str, expected: str) -> None:
    assert asyncpg_url(given) == expected
    assert DemoSettings(database_url=given).database_url == expected


@pytest.mark.parametrize(
    "url", ["mysql://u@h/db", "sqlite:///x.db", "postgresql+psycopg://u@h/db", "", "h/db"]
)
def test_non_postgres_urls_are_refused(url: str) -> None:
    with pytest.raises(ValidationError, match="PostgreSQL"):
        DemoSettings(database_url=url)


def test_values_come_from_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_DATABASE_URL", "postgres://env@h/envdb")
    monkeypatch.setenv("DEMO_LOG_LEVEL", "debug")
    monkeypatch.setenv("DEMO_LOG_JSON", "false")
    monkeypatch.setenv("DEMO_DB_POOL_SIZE", "3")
    monkeypatch.setenv("DATABASE_URL", "postgres://unprefixed@h/ignored")
    settings = DemoSettings()
    assert settings.database_url == "postgresql+asyncpg://env@h/envdb"
    assert settings.log_level == "DEBUG"
    assert settings.log_json is False
    assert settings.db_pool_size == 3


def test_defaults() -> None:
    settings = DemoSettings()
    assert settings.environment == "development"
    assert not settings.production
    assert settings.log_level == "INFO"
    assert settings.database_url.startswith("postgresql+asyncpg://")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("log_level", "verbose"),
        ("environment", "staging"),
        ("db_pool_size", 0),
        ("db_max_overflow", -1),
        ("db_connect_timeout_seconds", 0),
        ("db_statement_timeout_ms", -5),
    ],
)
def test_invalid_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        DemoSettings.model_validate({field: value})


def test_settings_are_frozen() -> None:
    settings = DemoSettings()
    with pytest.raises(ValidationError):
        settings.log_level = "DEBUG"  # type: ignore[misc]


def test_development_tolerates_placeholder_secrets() -> None:
    settings = DemoSettings(environment="development")
    assert settings.api_key.get_secret_value() == "changeme"


@pytest.mark.parametrize("placeholder", [*sorted(PLACEHOLDER_SECRETS), "  ChangeMe  ", "SECRET"])
def test_production_refuses_placeholder_secrets(placeholder: str) -> None:
    with pytest.raises(ValidationError, match="api_key"):
        DemoSettings(
            environment="production",
            signing_secret=SecretStr("a-real-secret-value"),
            api_key=SecretStr(placeholder),
        )


def test_production_refuses_missing_secrets_and_names_them_all() -> None:
    with pytest.raises(ValidationError) as caught:
        DemoSettings(environment="production")
    message = str(caught.value)
    assert "signing_secret" in message
    assert "api_key" in message


def test_production_with_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_ENVIRONMENT", "production")
    monkeypatch.setenv("DEMO_SIGNING_SECRET", "s3cr3t-from-the-vault")
    monkeypatch.setenv("DEMO_API_KEY", "another-long-random-value")
    settings = DemoSettings()
    assert settings.production
    assert "s3cr3t" not in repr(settings)


def test_base_class_checks_no_secrets() -> None:
    assert ServiceSettings(environment="production").production
