"""Letters: the per-school letterhead, a school's own template versions, stored documents,
the letter rows (the record of truth for every send), printed post batches and bulk runs."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import JSON, Date, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from attendwise.platform.db import Base, TenantMixin, TimestampMixin, utcnow


class Channel(enum.StrEnum):
    EMAIL = "email"
    POST = "post"


class EmailMode(enum.StrEnum):
    ATTACH = "attach"  # the PDF travels with the email
    LINK = "link"  # the email links to the letter behind a sign-in


class LetterStatus(enum.StrEnum):
    QUEUED = "queued"
    RENDERING = "rendering"
    RENDERED = "rendered"
    SENDING = "sending"
    RETRY = "retry"
    SENT = "sent"
    POSTED = "posted"
    FAILED = "failed"


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RENDERING = "rendering"
    RENDERED = "rendered"


class LetterSettings(TenantMixin, TimestampMixin, Base):
    """A school's letterhead and delivery choices (one row per school)."""

    __tablename__ = "letter_settings"
    __table_args__ = (UniqueConstraint("org_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    address_lines: Mapped[list[str]] = mapped_column(JSON, default=list)
    phone: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(200))
    head_name: Mapped[str | None] = mapped_column(String(200))
    sender_name: Mapped[str | None] = mapped_column(String(200))
    sender_role: Mapped[str | None] = mapped_column(String(200))
    logo: Mapped[bytes | None] = mapped_column(LargeBinary)
    logo_mime: Mapped[str | None] = mapped_column(String(40))
    signature: Mapped[bytes | None] = mapped_column(LargeBinary)
    signature_mime: Mapped[str | None] = mapped_column(String(40))
    email_mode: Mapped[str] = mapped_column(String(10), default=EmailMode.ATTACH.value)


class LetterTemplate(TenantMixin, Base):
    """One saved version of a school's own copy of a letter template (the newest is used)."""

    __tablename__ = "letter_templates"
    __table_args__ = (UniqueConstraint("org_id", "key", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(80))
    version: Mapped[int] = mapped_column()
    source: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class Document(TenantMixin, Base):
    """A stored PDF, addressed by the SHA-256 of its bytes (its HTML source is kept beside it)."""

    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("org_id", "sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column()
    kind: Mapped[str] = mapped_column(String(40))  # letter, registration_certificate, post_batch
    title: Mapped[str] = mapped_column(String(200))
    pupil_id: Mapped[int | None] = mapped_column(ForeignKey("pupils.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PostBatch(TenantMixin, Base):
    """Letters printed together, with the certificate of posting once they are posted."""

    __tablename__ = "letter_post_batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id", ondelete="RESTRICT"))
    posted_on: Mapped[dt.date | None] = mapped_column(Date)
    certificate_of_posting: Mapped[str | None] = mapped_column(String(200))
    posted_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class LetterRun(TenantMixin, TimestampMixin, Base):
    """One "this week's letters" run: the letter tasks it covers, its progress, the merged
    PDF of its post letters, and whether its emails were released (only then do they go)."""

    __tablename__ = "letter_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    week_start: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(12), default=RunStatus.QUEUED.value)
    items: Mapped[list[dict[str, object]]] = mapped_column(JSON, default=list)
    """One entry per letter task: ``task``, ``pupil``, ``case``, ``template``, ``pupil_name``."""
    total: Mapped[int] = mapped_column(default=0)
    done: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    errors: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    post_batch_id: Mapped[int | None] = mapped_column(
        ForeignKey("letter_post_batches.id", ondelete="SET NULL")
    )
    finished_at: Mapped[dt.datetime | None] = mapped_column()
    emails_released_at: Mapped[dt.datetime | None] = mapped_column()
    emails_released_by_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )


class Letter(TenantMixin, TimestampMixin, Base):
    """One letter to one recipient: the record that it was made and sent, exactly once."""

    __tablename__ = "letters"
    __table_args__ = (
        UniqueConstraint("idempotency_key"),
        Index("ix_letters_org_status", "org_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pupil_id: Mapped[int] = mapped_column(ForeignKey("pupils.id", ondelete="RESTRICT"), index=True)
    case_id: Mapped[int | None] = mapped_column(index=True)
    template_key: Mapped[str] = mapped_column(String(80))
    template_version: Mapped[int] = mapped_column(default=0)  # 0: the preset's default
    recipient_contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    recipient_name: Mapped[str] = mapped_column(String(200))
    recipient_email: Mapped[str | None] = mapped_column(String(320))
    channel: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(12), default=LetterStatus.QUEUED.value)
    idempotency_key: Mapped[str] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(default=0)
    context: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id", ondelete="RESTRICT"))
    provider_message_id: Mapped[str | None] = mapped_column(String(250))
    error: Mapped[str | None] = mapped_column(String(500))
    post_batch_id: Mapped[int | None] = mapped_column(
        ForeignKey("letter_post_batches.id", ondelete="SET NULL")
    )
    run_id: Mapped[int | None] = mapped_column(ForeignKey("letter_runs.id", ondelete="SET NULL"), index=True)
    queued_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    rendered_at: Mapped[dt.datetime | None] = mapped_column()
    sending_started_at: Mapped[dt.datetime | None] = mapped_column()
    sent_at: Mapped[dt.datetime | None] = mapped_column()
    posted_at: Mapped[dt.datetime | None] = mapped_column()
