"""The README's configuration table stays true: every setting the code reads is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from auth_service.settings import Settings as AuthSettings
from devstack.config import repo_root
from items_service.settings import Settings as ItemsSettings

ROOT = repo_root()
README = (ROOT / "README.md").read_text()


def _env_names(settings: type[BaseSettings], prefix: str) -> set[str]:
    names: set[str] = set()
    for field_name, info in settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice) for choice in alias.choices)
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(prefix + field_name.upper())
    return names


def _documented(name: str) -> bool:
    if f"`{name}`" in README:
        return True
    # Rows like `AUTH_PASSWORD_REQUIRE_UPPERCASE` / `_LOWERCASE` document a family of names.
    for stem_match in re.finditer(r"`([A-Z_]+?)(_[A-Z]+)`((?: / `_[A-Z]+`)+)", README):
        stem = stem_match.group(1)
        suffixes = [stem_match.group(2), *re.findall(r"`(_[A-Z]+)`", stem_match.group(3))]
        if name in {stem + s for s in suffixes}:
            return True
    return False


@pytest.mark.parametrize(
    "name",
    sorted(_env_names(AuthSettings, "AUTH_") | _env_names(ItemsSettings, "ITEMS_")),
)
def test_every_service_setting_is_in_the_readme(name: str) -> None:
    assert _documented(name), f"{name} is read by a service but missing from README.md"


def _gateway_env_names() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "gateway").rglob("*.yml"):
        names.update(re.findall(r'env "([A-Z_]+)"', path.read_text()))
    return names


@pytest.mark.parametrize("name", sorted(_gateway_env_names()))
def test_every_gateway_setting_is_in_the_readme(name: str) -> None:
    assert _documented(name), f"{name} is read by gateway/ but missing from README.md"


def test_the_gateway_reads_some_settings() -> None:
    # Guards the parametrisation above against silently testing nothing.
    assert {"GATEWAY_LOGIN_RATE_LIMIT", "AUTH_SERVICE_URL"} <= _gateway_env_names()


def test_readme_shows_the_two_commands() -> None:
    assert "make run" in README
    assert "make test" in README
    assert Path(ROOT / ".env.example").exists()
