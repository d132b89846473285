"""The auth database: users, signing keys, refresh token families, the event outbox, registered
OAuth2 clients, revoked access tokens, second factors (TOTP, recovery codes, pending MFA
sign-ins), account tokens (password reset, email verification) and the mail outbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    Uuid,
    false,
    func,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from svckit.orm import naming_metadata


class Base(DeclarativeBase):
    metadata = naming_metadata()


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    username: Mapped[str] = mapped_column(String(32))
    email: Mapped[str] = mapped_column(String(254))
    full_name: Mapped[str | None] = mapped_column(String(255))
    hashed_password: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=true())
    is_admin: Mapped[bool] = mapped_column(Boolean, server_default=false())
    email_verified: Mapped[bool] = mapped_column(Boolean, server_default=false())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        # Usernames are unique ignoring case; logins look them up by lower(username).
        Index("uq_users_username_lower", func.lower(username), unique=True),
        Index("uq_users_email", "email", unique=True),
        CheckConstraint("email = lower(email)", name="email_lowercase"),
    )


class SigningKey(Base):
    """An RS256 key pair. Published from creation, signs from ``activates_at``.

    The private key is PKCS#8 PEM, encrypted with the configured passphrase when there is
    one; it is erased when the key is retired.
    """

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_key_pem: Mapped[str] = mapped_column(Text)
    private_key_pem: Mapped[bytes | None] = mapped_column(LargeBinary)
    encrypted: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    activates_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RefreshFamily(Base):
    """Every refresh token descended from one login; revoked as a whole."""

    __tablename__ = "refresh_families"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoke_reason: Mapped[str | None] = mapped_column(String(32))
    # The registered client the login went through; NULL: the first-party public client.
    client_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("oauth_clients.client_id", ondelete="CASCADE"), index=True
    )
    # The scope granted at login (space-separated); NULL: the user's default scopes.
    scope: Mapped[str | None] = mapped_column(String(1024))
    # How the login authenticated the user (RFC 8176 ``amr`` values); NULL: a password.
    amr: Mapped[list[str] | None] = mapped_column(ARRAY(String(16)))


class RefreshToken(Base):
    """One refresh token, stored only as its SHA-256; ``used_at`` set when rotated."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    family_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("refresh_families.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OutboxEvent(Base):
    """An event written in the same transaction as the change it describes.

    The relay publishes unpublished rows to the Redis stream and then sets ``published_at``.
    """

    __tablename__ = "outbox_events"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_outbox_events_unpublished", "id", postgresql_where=published_at.is_(None)),
    )


class OAuthClient(Base):
    """A registered confidential client (RFC 6749 §2.1).

    The secret is stored only as a password hash (``secret_hash``); it is shown once, when the
    client is created or its secret rotated.
    """

    __tablename__ = "oauth_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    secret_hash: Mapped[str] = mapped_column(String(255))
    grant_types: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    secret_rotated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RevokedAccessToken(Base):
    """An access token revoked before it expired (RFC 7009), by ``jti``; pruned once expired."""

    __tablename__ = "revoked_access_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    revoked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TotpFactor(Base):
    """A user's TOTP secret (RFC 6238), active once ``confirmed_at`` is set.

    ``secret`` is sealed with the key derived from ``AUTH_KEY_PASSPHRASE`` when there is one
    (``encrypted``), like the signing keys. ``last_step`` is the last time step a code was
    accepted for, so no code is accepted twice, whichever replica sees it.
    """

    __tablename__ = "mfa_totp"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    secret: Mapped[bytes] = mapped_column(LargeBinary)
    encrypted: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_step: Mapped[int | None] = mapped_column(BigInteger)


class RecoveryCode(Base):
    """A single-use recovery code, stored only as its SHA-256 (80 random bits)."""

    __tablename__ = "mfa_recovery_codes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[bytes] = mapped_column(LargeBinary)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class MfaChallenge(Base):
    """A password login waiting for its second factor: the ``mfa_token`` (stored only as its
    SHA-256) and what the login asked for, so the MFA grant issues the same tokens."""

    __tablename__ = "mfa_challenges"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # The registered client the login went through; NULL: the first-party public client.
    client_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("oauth_clients.client_id", ondelete="CASCADE")
    )
    scope: Mapped[str | None] = mapped_column(String(1024))
    show_scope: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class AccountToken(Base):
    """A single-use token mailed to a user (``purpose``: ``password_reset``, ``verify_email``).

    Stored only as its SHA-256. ``email`` is the address a verification token confirms (the
    current one, or the new one of a pending change). ``consumed_at`` is set when the token is
    used, superseded by a newer one of the same purpose, or voided by a password change.
    """

    __tablename__ = "account_tokens"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    email: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    consumed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_account_tokens_user_purpose", "user_id", "purpose", "created_at"),)


class MailMessage(Base):
    """A message waiting in the mail outbox, written in the transaction that asked for it.

    The mail relay sends ``pending`` rows whose ``next_attempt_at`` has come and marks them
    ``sent``; a failure reschedules the row with backoff, and after the last attempt it is
    ``dead``. A row without ``recipient`` is a request still to be resolved by the relay
    (a password reset names an account, which the relay looks up). ``context`` holds what the
    template needs, links included, and is emptied once the row is sent or dead.
    """

    __tablename__ = "mail_outbox"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    message_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    template: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str | None] = mapped_column(String(254))
    context: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_mail_outbox_pending", "next_attempt_at", postgresql_where=status == "pending"),
    )
