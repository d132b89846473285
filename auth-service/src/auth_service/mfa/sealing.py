"""Sealing TOTP secrets at rest with the signing keys' passphrase (``AUTH_KEY_PASSPHRASE``).

The signing keys are PKCS#8 PEM encrypted under that passphrase; a TOTP secret is too small
for PEM, so it is sealed with AES-256-GCM under a key derived from the same passphrase with
scrypt (once, at start-up, in a worker thread). Each secret has its own random nonce, and the
user id is authenticated data, so a sealed secret copied to another user's row does not open.
Without a passphrase (development only: production refuses to start without one) secrets are
stored as they are and marked unencrypted, exactly like the signing keys.
"""

from __future__ import annotations

import asyncio
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from auth_service.keys.material import KeyMaterialError

_VERSION = b"\x01"
_NONCE_BYTES = 12
# A fixed salt is enough for one key per deployment; it separates this use of the passphrase.
_SALT = b"auth-service/mfa-totp-secret/v1"


def derive_key(passphrase: bytes) -> bytes:
    """The 256-bit sealing key for ``passphrase``. CPU- and memory-heavy: use a worker thread."""
    return Scrypt(salt=_SALT, length=32, n=2**15, r=8, p=1).derive(passphrase)


class SecretBox:
    def __init__(self, key: bytes | None) -> None:
        self._aead = AESGCM(key) if key is not None else None

    @classmethod
    async def from_passphrase(cls, passphrase: bytes | None) -> SecretBox:
        if passphrase is None:
            return cls(None)
        return cls(await asyncio.to_thread(derive_key, passphrase))

    @property
    def encrypts(self) -> bool:
        return self._aead is not None

    def seal(self, secret: str, *, user_id: int) -> tuple[bytes, bool]:
        """``(stored bytes, encrypted)`` for ``secret``."""
        if self._aead is None:
            return secret.encode(), False
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode(), _aad(user_id))
        return _VERSION + nonce + sealed, True

    def open(self, stored: bytes, *, encrypted: bool, user_id: int) -> str:
        if not encrypted:
            return stored.decode()
        if self._aead is None:
            raise KeyMaterialError("a TOTP secret is encrypted but AUTH_KEY_PASSPHRASE is not set")
        if stored[:1] != _VERSION or len(stored) <= 1 + _NONCE_BYTES:
            raise KeyMaterialError("a stored TOTP secret is malformed")
        nonce, sealed = stored[1 : 1 + _NONCE_BYTES], stored[1 + _NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, sealed, _aad(user_id)).decode()
        except InvalidTag:
            raise KeyMaterialError(
                "a TOTP secret cannot be decrypted (wrong AUTH_KEY_PASSPHRASE?)"
            ) from None


def _aad(user_id: int) -> bytes:
    return f"mfa_totp:{user_id}".encode()
