"""The local gateway's static configuration, rendered from gateway/traefik.yml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.errors import StackError
from devstack.gateway import access_log_mode, load_static, render_static

GATEWAY_DIR = Path(__file__).resolve().parents[2] / "gateway"


def rendered(access_log: str) -> dict[str, Any]:
    text = render_static(
        GATEWAY_DIR, host="127.0.0.1", port=18080, metrics_port=18082, access_log=access_log
    )
    config: dict[str, Any] = yaml.safe_load(text)
    return config


def test_all_keeps_the_access_log_of_the_shared_file() -> None:
    config = rendered("all")
    assert config["accessLog"] == load_static(GATEWAY_DIR)["accessLog"]
    assert "filters" not in config["accessLog"]
    assert config["entryPoints"]["web"]["address"] == "127.0.0.1:18080"
    assert config["entryPoints"]["internal"]["address"] == "127.0.0.1:18082"


def test_errors_keeps_failed_retried_and_slow_requests_with_the_same_fields() -> None:
    config = rendered("errors")
    shared = load_static(GATEWAY_DIR)["accessLog"]
    assert config["accessLog"]["filters"] == {
        "statusCodes": ["400-599"],
        "retryAttempts": True,
        "minDuration": "500ms",
    }
    assert config["accessLog"]["fields"] == shared["fields"], "headers stay dropped"
    assert config["accessLog"]["format"] == "json"


def test_off_has_no_access_log() -> None:
    assert "accessLog" not in rendered("off")


@pytest.mark.parametrize(
    ("value", "mode"), [(None, "errors"), ("", "errors"), ("ALL", "all"), (" off ", "off")]
)
def test_mode_defaults_to_errors_and_ignores_case(value: str | None, mode: str) -> None:
    assert access_log_mode(value) == mode


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(StackError, match="GATEWAY_ACCESS_LOG must be one of all, errors, off"):
        access_log_mode("verbose")
