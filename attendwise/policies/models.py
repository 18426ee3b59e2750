"""A school's escalation policy and its versions (YAML text, effective date, published or draft).

The YAML text is the source of truth: ``number`` and ``effective_from`` repeat the document's
own ``version`` block so versions can be listed and ordered without parsing. Published versions
never change; an edit is a new draft.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from attendwise.platform.db import Base, TenantMixin, TimestampMixin


class SchoolPolicy(TenantMixin, TimestampMixin, Base):
    """The escalation policy of one school (one per organisation)."""

    __tablename__ = "school_policies"
    __table_args__ = (UniqueConstraint("org_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    document_id: Mapped[str] = mapped_column(String(64))
    preset: Mapped[str | None] = mapped_column(String(64))

    versions: Mapped[list[PolicyVersion]] = relationship(
        back_populates="policy", order_by="PolicyVersion.number", cascade="all, delete-orphan"
    )


class PolicyVersion(TenantMixin, TimestampMixin, Base):
    """One version of a school's policy document."""

    __tablename__ = "policy_versions"
    __table_args__ = (UniqueConstraint("policy_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("school_policies.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column()
    effective_from: Mapped[dt.date] = mapped_column(Date)
    yaml_text: Mapped[str] = mapped_column(Text)
    published: Mapped[bool] = mapped_column(default=False)
    published_at: Mapped[dt.datetime | None] = mapped_column()
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    published_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    policy: Mapped[SchoolPolicy] = relationship(back_populates="versions")
