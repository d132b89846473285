"""Hostile access tokens, built the way an attacker would build them.

Everything here starts from what an attacker can see: a real access token (their own) and the
issuer's published JWKS. :class:`Forge` turns those into forged tokens: ``alg: none``,
HMAC keyed with the public key in every common encoding (built with :mod:`hmac`, since PyJWT
refuses to), tampered signatures and payloads, an attacker's RSA key under the real ``kid``,
key-fetching headers (``jku``, ``x5u``, ``x5c``, ``jwk``), hostile ``kid`` values and
structurally broken tokens.

When the suite runs its own stack it can also read the issuer's private key from the auth
database (:func:`load_private_key`). Tokens signed with the *real* key isolate one property
at a time: a correctly signed token whose only fault is its ``aud``, its ``typ`` or its
algorithm must still be refused, and a correctly signed good token (the control) accepted.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import RSAAlgorithm

from svckit.db import libpq_url

__all__ = [
    "Forge",
    "PublishedKey",
    "b64url",
    "b64url_decode",
    "hs_sign",
    "load_private_key",
    "public_key_forms",
    "self_signed_certificate",
    "split_token",
]

_HMAC_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JWS segments are written."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _segment(part: Mapping[str, Any] | bytes) -> str:
    return b64url(part if isinstance(part, bytes) else json.dumps(part).encode())


def split_token(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """Header, payload and signature of a compact JWS (no verification)."""
    header, payload, signature = token.split(".")
    return (
        json.loads(b64url_decode(header)),
        json.loads(b64url_decode(payload)),
        b64url_decode(signature),
    )


def compact(
    header: Mapping[str, Any] | bytes, payload: Mapping[str, Any] | bytes, signature: bytes = b""
) -> str:
    """A compact JWS of exactly these parts (JSON objects are serialised, bytes kept as is)."""
    return f"{_segment(header)}.{_segment(payload)}.{b64url(signature)}"


def hs_sign(
    header: Mapping[str, Any] | bytes,
    payload: Mapping[str, Any] | bytes,
    secret: bytes,
    alg: str = "HS256",
) -> str:
    """An HMAC-signed JWS, keyed with ``secret`` whatever it is (PyJWT refuses PEM secrets)."""
    signing_input = f"{_segment(header)}.{_segment(payload)}"
    mac = hmac.new(secret, signing_input.encode("ascii"), _HMAC_HASHES[alg]).digest()
    return f"{signing_input}.{b64url(mac)}"


@dataclass(frozen=True)
class PublishedKey:
    """One key of the issuer's JWKS, as published."""

    kid: str
    jwk: dict[str, Any]
    public_key: rsa.RSAPublicKey
    document_text: str  # the JWKS response body, byte for byte

    @classmethod
    def from_jwks(cls, document_text: str, kid: str) -> PublishedKey:
        document = json.loads(document_text)
        (jwk,) = [k for k in document["keys"] if k.get("kid") == kid]
        key = RSAAlgorithm.from_jwk(jwk)
        assert isinstance(key, rsa.RSAPublicKey)
        return cls(kid=kid, jwk=jwk, public_key=key, document_text=document_text)


def public_key_forms(key: PublishedKey) -> dict[str, bytes]:
    """The published public key in every encoding a confused verifier might use as an HMAC
    secret (RFC 8725 §2.1, "algorithm confusion")."""
    public = key.public_key
    spki_pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pkcs1_pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    return {
        "spki-pem": spki_pem,
        "spki-pem-no-newline": spki_pem.rstrip(b"\n"),
        "spki-pem-crlf": spki_pem.replace(b"\n", b"\r\n"),
        "pkcs1-pem": pkcs1_pem,
        "pkcs1-pem-no-newline": pkcs1_pem.rstrip(b"\n"),
        "spki-der": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "pkcs1-der": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.PKCS1
        ),
        "openssh": public.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ),
        "jwk-json": json.dumps(key.jwk).encode(),
        "jwk-json-compact": json.dumps(key.jwk, separators=(",", ":")).encode(),
        "jwks-document": key.document_text.encode(),
        "modulus-bytes": b64url_decode(key.jwk["n"]),
    }


def self_signed_certificate(private_key: rsa.RSAPrivateKey) -> bytes:
    """A DER X.509 certificate for ``private_key``'s public half (for ``x5c`` headers)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker.example")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(private_key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.DER)


async def load_private_key(database_url: str, kid: str) -> rsa.RSAPrivateKey:
    """The issuer's private key ``kid``, read from the auth database of a local stack.

    Only possible where the test owns the stack (unencrypted keys: no passphrase is set).
    """
    conn = await asyncpg.connect(libpq_url(database_url), timeout=10)
    try:
        row = await conn.fetchrow(
            "SELECT private_key_pem, encrypted FROM signing_keys WHERE kid = $1", kid
        )
    finally:
        await conn.close()
    assert row is not None, f"kid {kid!r} is not in the auth database"
    assert not row["encrypted"], "the stack's signing key is encrypted; cannot read it"
    key = serialization.load_pem_private_key(bytes(row["private_key_pem"]), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _rsa(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@dataclass
class Forge:
    """Builds hostile tokens from one genuine access token and the published key.

    ``real_private_key`` is the issuer's own key when the suite may read it (local stack):
    :meth:`real_sign` then produces correctly signed tokens with any header or payload.
    ``canary_url`` is a loopback URL that nobody should ever fetch (``jku``/``x5u`` targets).
    """

    genuine: str
    published: PublishedKey
    canary_url: str
    real_private_key: rsa.RSAPrivateKey | None = None
    attacker_key: rsa.RSAPrivateKey = field(default_factory=_rsa)

    @property
    def header(self) -> dict[str, Any]:
        return split_token(self.genuine)[0]

    @property
    def payload(self) -> dict[str, Any]:
        return split_token(self.genuine)[1]

    @property
    def signature(self) -> bytes:
        return split_token(self.genuine)[2]

    @property
    def segments(self) -> tuple[str, str, str]:
        """The genuine token's header, payload and signature segments, as sent."""
        head, body, signature = self.genuine.split(".")
        return head, body, signature

    @property
    def kid(self) -> str:
        return self.published.kid

    def fresh_payload(self, **changes: Any) -> dict[str, Any]:
        """The genuine payload with a new ``jti``, fresh times and ``changes`` applied; a change
        to ``None`` removes the claim."""
        now = int(time.time())
        payload = {**self.payload, "iat": now, "nbf": now, "exp": now + 300}
        payload["jti"] = uuid.uuid4().hex
        for name, value in changes.items():
            if value is None:
                payload.pop(name, None)
            else:
                payload[name] = value
        return payload

    def fresh_header(self, **changes: Any) -> dict[str, Any]:
        header = {"alg": "RS256", "typ": "at+jwt", "kid": self.kid}
        for name, value in changes.items():
            if value is None:
                header.pop(name, None)
            else:
                header[name] = value
        return header

    # -- signing -------------------------------------------------------------------------

    def attacker_sign(
        self,
        header: Mapping[str, Any] | bytes,
        payload: Mapping[str, Any] | bytes,
        algorithm: str = "RS256",
    ) -> str:
        return _rsa_sign(self.attacker_key, header, payload, algorithm)

    def real_sign(
        self,
        header: Mapping[str, Any] | bytes,
        payload: Mapping[str, Any] | bytes,
        algorithm: str = "RS256",
    ) -> str:
        """Signed with the issuer's real private key (only on a local stack)."""
        assert self.real_private_key is not None, "the issuer's private key is not available"
        return _rsa_sign(self.real_private_key, header, payload, algorithm)

    def attacker_jwk(self, kid: str | None = None) -> dict[str, Any]:
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self.attacker_key.public_key(), as_dict=True)
        jwk.update({"kid": kid or self.kid, "use": "sig", "alg": "RS256"})
        return jwk

    def flipped_signature(self) -> str:
        signature = bytearray(self.signature)
        signature[len(signature) // 2] ^= 0x01
        head, body, _ = self.segments
        return f"{head}.{body}.{b64url(bytes(signature))}"


def _rsa_sign(
    key: rsa.RSAPrivateKey,
    header: Mapping[str, Any] | bytes,
    payload: Mapping[str, Any] | bytes,
    algorithm: str,
) -> str:
    """An RSA signature (``RS*`` or ``PS*``) over exactly ``header`` and ``payload``."""
    signing_input = f"{_segment(header)}.{_segment(payload)}".encode("ascii")
    signer = jwt.get_algorithm_by_name(algorithm)
    signature = signer.sign(signing_input, key)
    return f"{signing_input.decode('ascii')}.{b64url(signature)}"
