"""Organisations (the tenants), users, identities and memberships."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Enum, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from attendwise.platform.db import Base, TenantMixin, TimestampMixin, utcnow


class OrgKind(enum.StrEnum):
    PLATFORM = "platform"
    LA = "la"
    TRUST = "trust"
    SCHOOL = "school"


class Organisation(TimestampMixin, Base):
    """A tenant: the platform itself, a local authority, a trust or a school."""

    __tablename__ = "organisations"
    __global_reason__ = "the tenant registry itself; every tenant-owned row points here"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[OrgKind] = mapped_column(
        Enum(OrgKind, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])
    )
    name: Mapped[str] = mapped_column(String(200))
    la_code: Mapped[str | None] = mapped_column(String(3), unique=True)  # LAs only, e.g. "835"
    urn: Mapped[str | None] = mapped_column(String(8), unique=True)  # schools only
    laestab: Mapped[str | None] = mapped_column(String(7))  # schools: LA code + establishment number
    phase: Mapped[str | None] = mapped_column(String(40))
    la_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)
    trust_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)
    timezone: Mapped[str] = mapped_column(String(40), default="Europe/London")
    mfa_required: Mapped[bool] = mapped_column(default=False)
    active: Mapped[bool] = mapped_column(default=True)

    la: Mapped[Organisation | None] = relationship(remote_side=[id], foreign_keys=[la_id])
    trust: Mapped[Organisation | None] = relationship(remote_side=[id], foreign_keys=[trust_id])

    def __repr__(self) -> str:
        return f"<Organisation {self.id} {self.kind} {self.name!r}>"


class User(TimestampMixin, Base):
    __tablename__ = "users"
    __global_reason__ = "a person may belong to several organisations; looked up before a tenant is known"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(default=True)
    totp_secret: Mapped[str | None] = mapped_column(String(200))  # encrypted at rest
    totp_enabled: Mapped[bool] = mapped_column(default=False)
    totp_last_step: Mapped[int | None] = mapped_column()
    recovery_codes: Mapped[str | None] = mapped_column(String(2000))  # JSON list of hashes
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column()
    last_login_at: Mapped[dt.datetime | None] = mapped_column()
    password_changed_at: Mapped[dt.datetime | None] = mapped_column()

    memberships: Mapped[list[Membership]] = relationship(back_populates="user", lazy="selectin")

    def __repr__(self) -> str:
        return f"<User {self.id}>"


class Identity(Base):
    """How a person proves who they are: (issuer, subject), never the email address."""

    __tablename__ = "identities"
    __global_reason__ = "authentication data, looked up by (issuer, subject) before a tenant is known"
    __table_args__ = (UniqueConstraint("issuer", "subject"),)

    LOCAL_ISSUER = "attendwise:local"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    issuer: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column()


class Membership(TimestampMixin, Base):
    """A user's role in one organisation."""

    __tablename__ = "memberships"
    __global_reason__ = (
        "access-control data, read at sign-in to list a user's organisations; scoped in services"
    )
    __table_args__ = (UniqueConstraint("user_id", "org_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    role: Mapped[str] = mapped_column(String(40))
    active: Mapped[bool] = mapped_column(default=True)

    user: Mapped[User] = relationship(back_populates="memberships")
    organisation: Mapped[Organisation] = relationship(lazy="joined")


class Invitation(TenantMixin, TimestampMixin, Base):
    """An expiring one-time link for a person to join an organisation with a role."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(40))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[dt.datetime] = mapped_column()
    accepted_at: Mapped[dt.datetime | None] = mapped_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column()
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class ApiToken(TimestampMixin, Base):
    """A personal API token: one organisation, a set of scopes, an expiry; stored hashed."""

    __tablename__ = "api_tokens"
    __global_reason__ = "authentication data, looked up by hash before a tenant is known; scoped to org_id"

    PREFIX = "awpat_"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(1000))  # space-separated permission names
    expires_at: Mapped[dt.datetime] = mapped_column()
    last_used_at: Mapped[dt.datetime | None] = mapped_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column()
