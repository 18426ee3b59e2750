"""Uploaded files kept in the database: the file of a failed file import, so the import can be
retried, and a CSV between its preview and its import.

A file is kept only for a run that failed, moves to the retry's run when the retry fails too,
and is deleted when a retry succeeds. A CSV upload is deleted by its import (a failed import
keeps it for its run) or when the school discards it. :func:`purge` deletes what was left:
files of failed runs nobody retried, and uploads nobody imported. Each step is audited with the
file's name and SHA-256, never its content.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from attendwise.integrations.models import CsvUpload, SyncRun, SyncRunFile
from attendwise.platform import audit


def keep(session: Session, run: SyncRun, filename: str, content: bytes) -> SyncRunFile:
    """Keep the file a failed run read, so that run can be retried from the MIS data page."""
    kept = SyncRunFile(
        org_id=run.org_id,
        sync_run_id=run.id,
        filename=filename[:255],
        sha256=hashlib.sha256(content).hexdigest(),
        size=len(content),
        content=content,
    )
    session.add(kept)
    session.flush()
    _audit(session, kept, "integrations.file_kept", size=kept.size)
    return kept


def kept_for(session: Session, run: SyncRun) -> SyncRunFile | None:
    return session.scalar(
        select(SyncRunFile).where(SyncRunFile.org_id == run.org_id, SyncRunFile.sync_run_id == run.id)
    )


def move(session: Session, kept: SyncRunFile, run: SyncRun) -> None:
    """Hand the file on to ``run``, a retry that failed too: the newest failed run offers the retry."""
    was = kept.sync_run_id
    kept.sync_run_id = run.id
    session.flush()
    _audit(session, kept, "integrations.file_kept", size=kept.size, moved_from_run=was)


def discard(session: Session, kept: SyncRunFile | CsvUpload) -> None:
    """Delete a kept file or upload: its import has succeeded, or the school does not want it."""
    session.delete(kept)
    session.flush()
    _audit(session, kept, "integrations.file_discarded")


def keep_upload(
    session: Session, org_id: int, *, kind: str, filename: str, content: bytes, user_id: int | None
) -> CsvUpload:
    """Keep an uploaded CSV of ``kind`` for its preview and import."""
    upload = CsvUpload(
        org_id=org_id,
        kind=kind,
        filename=filename[:255],
        sha256=hashlib.sha256(content).hexdigest(),
        size=len(content),
        content=content,
        uploaded_by_user_id=user_id,
    )
    session.add(upload)
    session.flush()
    _audit(session, upload, "integrations.file_uploaded", size=upload.size, kind=kind)
    return upload


def upload_of(session: Session, org_id: int, upload_id: int) -> CsvUpload | None:
    """The school's upload ``upload_id``; ``None`` for another organisation's or a missing one."""
    return session.scalar(select(CsvUpload).where(CsvUpload.org_id == org_id, CsvUpload.id == upload_id))


def purge(session: Session, *, runs_before: dt.datetime, uploads_before: dt.datetime) -> dict[str, int]:
    """Delete the files of failed runs started before ``runs_before`` (the newest failed attempt:
    a retry that fails too moves the file to its own run) and the uploads made before
    ``uploads_before``; each deletion is audited in its school's chain. Run in the system context."""
    files = session.execute(
        select(
            SyncRunFile.id,
            SyncRunFile.org_id,
            SyncRunFile.sync_run_id,
            SyncRunFile.filename,
            SyncRunFile.sha256,
        )
        .join(SyncRun, SyncRun.id == SyncRunFile.sync_run_id)
        .where(SyncRun.started_at < runs_before)
        .order_by(SyncRunFile.id)
    ).all()
    uploads = session.execute(
        select(CsvUpload.id, CsvUpload.org_id, CsvUpload.filename, CsvUpload.sha256)
        .where(CsvUpload.created_at < uploads_before)
        .order_by(CsvUpload.id)
    ).all()
    if files:
        session.execute(delete(SyncRunFile).where(SyncRunFile.id.in_([f.id for f in files])))
    if uploads:
        session.execute(delete(CsvUpload).where(CsvUpload.id.in_([u.id for u in uploads])))
    purged = [
        audit.Event(
            f.org_id,
            "integrations.file_purged",
            "sync_run",
            f.sync_run_id,
            detail={"filename": f.filename, "sha256": f.sha256, "kept_before": runs_before.isoformat()},
        )
        for f in files
    ] + [
        audit.Event(
            u.org_id,
            "integrations.file_purged",
            "csv_upload",
            u.id,
            detail={
                "filename": u.filename,
                "sha256": u.sha256,
                "uploaded_before": uploads_before.isoformat(),
            },
        )
        for u in uploads
    ]
    audit.record_many(session, purged)
    return {"run_files": len(files), "uploads": len(uploads)}


def _audit(session: Session, kept: SyncRunFile | CsvUpload, action: str, **detail: Any) -> None:
    object_type, object_id = (
        ("sync_run", kept.sync_run_id) if isinstance(kept, SyncRunFile) else ("csv_upload", kept.id)
    )
    audit.record(
        session,
        org_id=kept.org_id,
        action=action,
        object_type=object_type,
        object_id=object_id,
        detail={"filename": kept.filename, "sha256": kept.sha256, **detail},
    )
