"""The token endpoint's errors (RFC 6749 §5.2), in the shared envelope.

Each carries ``error`` and ``error_description`` beside the envelope's members, and its
``error`` as the envelope ``code``, so OAuth2 client libraries and envelope readers both
understand it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from svckit.errors import ServiceError


class OAuthError(ServiceError):
    status_code = 400
    error = "invalid_request"
    detail = "The request is missing a parameter or is otherwise malformed"

    def __init__(
        self,
        description: str | None = None,
        *,
        status_code: int | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        text = description or str(self.detail)
        super().__init__(
            text,
            status_code=status_code,
            code=self.error,
            headers=headers,
            extra={"error": self.error, "error_description": text, **(extra or {})},
        )


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    """One answer for an unknown client, a wrong secret and a malformed ``Authorization``."""

    status_code = 401
    error = "invalid_client"
    detail = "Client authentication failed"

    def __init__(self) -> None:
        # RFC 6749 §5.2: 401 with a challenge for the scheme the client may use.
        super().__init__(headers={"WWW-Authenticate": 'Basic realm="auth-service"'})


class InvalidGrant(OAuthError):
    error = "invalid_grant"
    detail = "The grant is invalid, expired or revoked, or was issued to another client"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"
    detail = "This client may not use this grant type"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"
    detail = (
        "Supported grant types: password, refresh_token, client_credentials, "
        "urn:auth-service:params:oauth:grant-type:mfa-otp"
    )


class InvalidScope(OAuthError):
    error = "invalid_scope"
    detail = "The requested scope is invalid, unknown or exceeds what may be granted"
