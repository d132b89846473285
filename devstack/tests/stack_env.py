"""Settings of the test stack, shared by the fixtures and the tests."""

from __future__ import annotations

from typing import Protocol

import httpx

LOGIN_LIMIT = 3
REGISTER_LIMIT = 4
REFRESH_LIMIT = 2
MAX_BODY_BYTES = 64 * 1024
ALLOWED_ORIGIN = "http://app.example.test"

STACK_ENV = {
    "AUTH_BCRYPT_ROUNDS": "4",
    "AUTH_LOG_LEVEL": "WARNING",
    "ITEMS_LOG_LEVEL": "WARNING",
    "GATEWAY_LOGIN_RATE_LIMIT": str(LOGIN_LIMIT),
    "GATEWAY_LOGIN_RATE_PERIOD": "1m",
    "GATEWAY_REGISTER_RATE_LIMIT": str(REGISTER_LIMIT),
    "GATEWAY_REGISTER_RATE_PERIOD": "1m",
    "GATEWAY_REFRESH_RATE_LIMIT": str(REFRESH_LIMIT),
    "GATEWAY_REFRESH_RATE_PERIOD": "1m",
    "GATEWAY_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
    "GATEWAY_CORS_ORIGINS": f"{ALLOWED_ORIGIN}, http://other.example.test",
    "GATEWAY_HEALTHCHECK_INTERVAL": "1s",
}


class ClientFactory(Protocol):
    def __call__(
        self, base_url: str | None = None, source_address: str | None = None
    ) -> httpx.Client: ...
