"""The uploaded files of failed file imports, kept in the database so the import can be retried.

A file is kept only for a run that failed, moves to the retry's run when the retry fails too,
and is deleted when a retry succeeds. Each step is audited with the file's name and SHA-256,
never its content.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.integrations.models import SyncRun, SyncRunFile
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


def discard(session: Session, kept: SyncRunFile) -> None:
    """Delete a kept file: its import has succeeded."""
    session.delete(kept)
    session.flush()
    _audit(session, kept, "integrations.file_discarded")


def _audit(session: Session, kept: SyncRunFile, action: str, **detail: Any) -> None:
    audit.record(
        session,
        org_id=kept.org_id,
        action=action,
        object_type="sync_run",
        object_id=kept.sync_run_id,
        detail={"filename": kept.filename, "sha256": kept.sha256, **detail},
    )
