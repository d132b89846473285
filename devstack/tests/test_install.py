"""What `make install` leaves behind, as the stack `make run` starts relies on it."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import pytest


@pytest.mark.parametrize("module", ["fastapi", "sqlalchemy.orm", "redis.commands.core", "asyncpg"])
def test_dependencies_are_installed_with_their_bytecode(module: str) -> None:
    """`uv sync --compile-bytecode`: no service process compiles its imports at start (they
    would be compiled on every start where bytecode is not written, and the compiler's memory
    would stay with the process), as in the images (``UV_COMPILE_BYTECODE``)."""
    source = importlib.import_module(module).__file__
    assert source is not None
    cached = Path(importlib.util.cache_from_source(source))
    assert cached.is_file(), f"{cached} is missing: run `make install`"
    assert cached.stat().st_mtime >= Path(source).stat().st_mtime
