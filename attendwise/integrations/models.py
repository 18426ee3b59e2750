"""Sync runs: each import or MIS sync of a school, its counts, and every record it rejected.

At most one run per school is ``running`` at a time: a unique index over ``org_id`` limited to
running rows is the lock, so two syncs started together cannot both begin, on PostgreSQL and on
SQLite alike (see ``services.start_run``).
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, LargeBinary, String, Text, Time, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from attendwise.platform.db import Base, TenantMixin, TimestampMixin, utcnow


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class SyncRun(TenantMixin, Base):
    __tablename__ = "sync_runs"
    __table_args__ = (
        Index(
            "uq_sync_runs_one_running",
            "org_id",
            unique=True,
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
        Index("ix_sync_runs_org_started", "org_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    connector: Mapped[str] = mapped_column(String(40))  # "ctf", "csv", "wonde"
    source: Mapped[str] = mapped_column(String(255), default="")  # file name, or the MIS school id
    status: Mapped[RunStatus] = mapped_column(
        Enum(RunStatus, native_enum=False, length=12, values_callable=lambda e: [m.value for m in e]),
        default=RunStatus.RUNNING,
    )
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column()
    created: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    deleted: Mapped[int] = mapped_column(default=0)
    rejected: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # counts per kind of record
    started_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    rejections: Mapped[list[SyncRejection]] = relationship(
        back_populates="run", order_by="SyncRejection.id", cascade="all, delete-orphan"
    )

    def __repr__(self) -> str:
        return f"<SyncRun {self.id} {self.connector} {self.status}>"


class SyncRejection(TenantMixin, Base):
    """One record a run did not import, with where it is in the source and why."""

    __tablename__ = "sync_rejections"
    __audit_skip__ = True  # can be thousands per run: services.finish_run audits each run's rejections

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("sync_runs.id", ondelete="CASCADE"), index=True)
    record: Mapped[str] = mapped_column(String(200))  # e.g. "pupil C835200120001", "row 12"
    location: Mapped[str] = mapped_column(String(500))
    reason: Mapped[str] = mapped_column(Text)

    run: Mapped[SyncRun] = relationship(back_populates="rejections")


class SyncRunFile(TenantMixin, Base):
    """The uploaded file of a failed file import, kept so the import can be retried.

    Kept in the database, not on a web server's disk (the servers share none), only while its
    run is the school's last failed attempt at that file: a retry that succeeds deletes it.
    """

    __tablename__ = "sync_run_files"
    __audit_skip__ = True  # the content must not reach the audit log: files.keep audits the file

    id: Mapped[int] = mapped_column(primary_key=True)
    sync_run_id: Mapped[int] = mapped_column(ForeignKey("sync_runs.id", ondelete="CASCADE"), unique=True)
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column()
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CsvUpload(TenantMixin, Base):
    """A CSV uploaded on the MIS data page, kept between its preview and its import.

    Kept in the database, as :class:`SyncRunFile` is, so the import reads the very bytes that
    were previewed whichever web server takes the request. Deleted by its import (a failed import
    hands the file to its run as a :class:`SyncRunFile`), or by the purge job when left unfinished.
    """

    __tablename__ = "csv_uploads"
    __audit_skip__ = True  # the content must not reach the audit log: files.keep_upload audits the file

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column()
    content: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CsvMapping(TenantMixin, TimestampMixin, Base):
    """A school's saved column mapping for one kind of CSV export (``marks`` or ``pupils``).

    ``columns`` maps each Attendwise field to the header the school's MIS export uses,
    e.g. ``{"upn": "UPN", "date": "Date", "session": "Session Name", "code": "Mark"}``.
    """

    __tablename__ = "csv_mappings"
    __table_args__ = (UniqueConstraint("org_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    columns: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)


class SyncFingerprint(TenantMixin, Base):
    """What a feed last delivered for one pupil, as a digest: an identical delivery is skipped.

    ``feed`` is the connector (``ctf``, ``csv-marks``, ``wonde``...), ``key`` the pupil's UPN and
    ``digest`` a SHA-256 of the pupil's normalised record, contacts and marks as last stored.
    """

    __tablename__ = "sync_fingerprints"
    __audit_skip__ = True  # one per pupil and feed: services.store audits each batch instead
    __table_args__ = (UniqueConstraint("org_id", "feed", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    feed: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(100))
    digest: Mapped[str] = mapped_column(String(64))
    stored_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ConnectorSettings(TenantMixin, TimestampMixin, Base):
    """How one school connects its MIS through an API connector (Wonde), and when it syncs.

    The bearer token is stored encrypted (``platform/crypto.py``) and is never shown again:
    pages show only when it was saved. ``sync_at`` is a time of day in the school's own time
    zone; ``last_scheduled_on`` is the school-local day whose scheduled sync was last queued,
    so the scheduler queues each day's sync once however often it looks.
    """

    __tablename__ = "connector_settings"
    __audit_skip__ = True  # the token must not reach the audit log: services.save_connector audits
    __table_args__ = (UniqueConstraint("org_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connector: Mapped[str] = mapped_column(String(40))
    mis_school_id: Mapped[str] = mapped_column(String(100))
    token_encrypted: Mapped[str | None] = mapped_column(Text)
    token_saved_at: Mapped[dt.datetime | None] = mapped_column()
    sync_at: Mapped[dt.time] = mapped_column(Time, default=dt.time(18, 0))
    enabled: Mapped[bool] = mapped_column(default=False)
    last_scheduled_on: Mapped[dt.date | None] = mapped_column()
