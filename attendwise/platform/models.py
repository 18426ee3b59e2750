"""Account-security tables: sign-in throttling counters and password-reset tokens."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from attendwise.platform.db import Base, utcnow


class ThrottleBucket(Base):
    """Failure counters for one sign-in key (an account, an IP address, an MFA challenge).

    Used when no Redis is configured; with Redis the same counters live there.
    """

    __tablename__ = "throttle_buckets"
    __global_reason__ = "sign-in throttling, keyed by account or IP before any tenant is known"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    consecutive: Mapped[int] = mapped_column(default=0)
    window_started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    window_count: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column()
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class PasswordResetToken(Base):
    """A one-time, expiring password-reset link; only the token's SHA-256 is stored."""

    __tablename__ = "password_reset_tokens"
    __global_reason__ = "authentication data, looked up by hash before a tenant is known"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    used_at: Mapped[dt.datetime | None] = mapped_column()
