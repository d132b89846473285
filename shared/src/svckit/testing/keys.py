"""Test helpers for tokens: RSA keys, signed tokens and a real JWKS HTTP server.

The server is a real ``http.server`` on a loopback port in a thread, so JWKS caches are tested
against actual HTTP (status codes, headers, redirects, slowness), and it counts requests.
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from jwt.algorithms import RSAAlgorithm


@dataclass
class SigningKey:
    """An RSA key pair with a ``kid``, able to sign access tokens and describe itself as a JWK."""

    private_key: rsa.RSAPrivateKey
    kid: str

    @classmethod
    def generate(cls, bits: int = 2048, kid: str | None = None) -> SigningKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        return cls(key, kid or uuid.uuid4().hex[:16])

    @property
    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def jwk(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        data.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return data

    def sign(
        self,
        claims: dict[str, Any],
        *,
        headers: dict[str, Any] | None = None,
        algorithm: str = "RS256",
    ) -> str:
        hdrs = {"typ": "at+jwt", "kid": self.kid, **(headers or {})}
        return jwt.encode(claims, self.private_key, algorithm=algorithm, headers=hdrs)

    def sign_raw(
        self, header: Mapping[str, Any] | bytes, payload: Mapping[str, Any] | bytes
    ) -> str:
        """An RS256 signature over exactly ``header`` and ``payload``, whatever they hold.

        Nothing is added to the header (no ``typ``, no ``kid``) and nothing is validated.
        """
        signing_input = f"{_segment(header)}.{_segment(payload)}".encode()
        signature = self.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input.decode()}.{b64url(signature)}"


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JWS segments are written."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _segment(part: Mapping[str, Any] | bytes) -> str:
    return b64url(part if isinstance(part, bytes) else json.dumps(part).encode())


def compact_jws(
    header: Mapping[str, Any] | bytes, payload: Mapping[str, Any] | bytes, signature: bytes = b""
) -> str:
    """A compact JWS from exactly these parts, unsigned unless ``signature`` is given.

    Lets tests build tokens no JWT library would produce (odd headers, raw bytes).
    """
    return f"{_segment(header)}.{_segment(payload)}.{b64url(signature)}"


def access_claims(
    *,
    issuer: str,
    audience: str,
    sub: str = "1",
    roles: list[str] | None = None,
    lifetime: int = 300,
    now: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Claims of a valid access token as auth-service issues them."""
    t = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": sub,
        "aud": audience,
        "iat": t,
        "nbf": t,
        "exp": t + lifetime,
        "jti": uuid.uuid4().hex,
        "preferred_username": f"user{sub}",
        "roles": roles or [],
    }
    claims.update(extra)
    return claims


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeouts are what some tests are about) is not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class JWKSServer:
    """Serves a JWKS at ``/.well-known/jwks.json`` on 127.0.0.1 and counts the requests.

    Change ``keys``, ``status``, ``body``, ``delay``, ``max_age`` or ``redirect_to`` at any
    time to change what it answers. ``requests`` counts requests to any path, and
    ``request_headers`` keeps their headers, so it can also prove that a URL was never fetched.
    """

    keys: list[SigningKey] = field(default_factory=list)
    max_age: int | None = 300
    status: int = 200
    body: bytes | None = None
    delay: float = 0.0
    redirect_to: str | None = None
    requests: int = 0
    request_headers: list[dict[str, str]] = field(default_factory=list)
    path: str = "/.well-known/jwks.json"
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self.path}"

    def document(self) -> dict[str, Any]:
        return {"keys": [k.jwk() for k in self.keys]}

    def start(self) -> JWKSServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with owner._lock:
                    owner.requests += 1
                    owner.request_headers.append(dict(self.headers.items()))
                if owner.delay:
                    time.sleep(owner.delay)
                if owner.redirect_to:
                    self.send_response(302)
                    self.send_header("Location", owner.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                payload = owner.body if owner.body is not None else json.dumps(owner.document())
                data = payload.encode() if isinstance(payload, str) else payload
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                if owner.max_age is not None:
                    self.send_header("Cache-Control", f"public, max-age={owner.max_age}")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # a short poll interval: stop() waits for it (0.5 s by default, per test)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
