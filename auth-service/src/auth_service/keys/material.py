"""RSA key material: generation, (encrypted) PEM serialisation and the public JWK."""

from __future__ import annotations

import secrets
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


class KeyMaterialError(Exception):
    """A stored private key cannot be loaded (wrong or missing passphrase, corrupt data)."""


def new_kid() -> str:
    return secrets.token_urlsafe(16)


def generate_private_key(bits: int) -> rsa.RSAPrivateKey:
    """A fresh RSA key. CPU-heavy (tens to hundreds of ms): call it from a worker thread."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def private_pem(key: rsa.RSAPrivateKey, passphrase: bytes | None) -> bytes:
    """PKCS#8 PEM, encrypted with ``passphrase`` when one is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def public_pem(key: rsa.RSAPublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def load_private_key(pem: bytes, passphrase: bytes | None, *, encrypted: bool) -> rsa.RSAPrivateKey:
    if encrypted and not passphrase:
        raise KeyMaterialError("the signing key is encrypted but AUTH_KEY_PASSPHRASE is not set")
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase if encrypted else None)
    except (ValueError, TypeError) as exc:
        raise KeyMaterialError(
            "the signing key cannot be decrypted (wrong AUTH_KEY_PASSPHRASE?)"
        ) from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyMaterialError("the stored signing key is not an RSA key")
    return key


def load_public_key(pem: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyMaterialError("the stored public key is not an RSA key")
    return key


def public_jwk(kid: str, key: rsa.RSAPublicKey) -> dict[str, Any]:
    """The JWKS entry for ``key``: ``kty, kid, use, alg, n, e`` and nothing private."""
    jwk = RSAAlgorithm.to_jwk(key, as_dict=True)
    return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": jwk["n"], "e": jwk["e"]}
