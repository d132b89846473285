"""Reading a client's credentials off a token-endpoint request (RFC 6749 §2.3.1).

``client_secret_basic``: ``Authorization: Basic base64(urlencode(id) ":" urlencode(secret))``;
``client_secret_post``: ``client_id`` and ``client_secret`` form fields. Using both at once
is refused (§2.3). A request with neither, or with only a ``client_id``, names a public
client; which public client is allowed is up to the endpoint.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import unquote_plus

from fastapi import Request

from auth_service.clients.service import MAX_SECRET_LENGTH, ClientCredentials
from auth_service.oauth.errors import InvalidClient, InvalidRequest

MAX_CLIENT_ID_LENGTH = 256


@dataclass(frozen=True, slots=True)
class PresentedClient:
    """Confidential credentials, or the ``client_id`` a public client named (maybe none)."""

    credentials: ClientCredentials | None
    public_client_id: str | None


def _basic(header: str) -> ClientCredentials:
    try:
        decoded = base64.b64decode(header.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClient() from None
    client_id, sep, secret = decoded.partition(":")
    client_id, secret = unquote_plus(client_id), unquote_plus(secret)
    if (
        not sep
        or not client_id
        or len(client_id) > MAX_CLIENT_ID_LENGTH
        or len(secret) > MAX_SECRET_LENGTH
    ):
        raise InvalidClient()
    return ClientCredentials(client_id, secret, "client_secret_basic")


def presented_client(
    request: Request, *, client_id: str | None, client_secret: str | None
) -> PresentedClient:
    """What the request says about its client (the form fields are passed in, already read)."""
    authorization = request.headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    basic = scheme.lower() == "basic"
    if basic:
        if client_secret is not None:
            raise InvalidRequest("Use one client authentication method, not two")
        credentials = _basic(value)
        if client_id is not None and client_id != credentials.client_id:
            raise InvalidRequest("client_id does not match the authenticated client")
        return PresentedClient(credentials, None)
    if client_secret is not None:
        if not client_id:
            raise InvalidClient()
        return PresentedClient(
            ClientCredentials(client_id, client_secret, "client_secret_post"), None
        )
    return PresentedClient(None, client_id or None)
