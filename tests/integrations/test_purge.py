"""The periodic purge: files kept for failed runs nobody retried, and CSV uploads nobody imported."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from attendwise.integrations import files, jobs
from attendwise.integrations.models import CsvUpload, RunStatus, SyncRun, SyncRunFile
from attendwise.platform import audit, tenancy
from attendwise.platform import jobs as platform_jobs
from attendwise.platform.audit import AuditEvent
from attendwise.platform.db import utcnow
from attendwise.tenants.models import Organisation


def failed_run_with_file(session: Session, school: Organisation, *, days_ago: float, name: str) -> int:
    started = utcnow() - dt.timedelta(days=days_ago)
    with tenancy.tenant_context(school.id):
        run = SyncRun(
            org_id=school.id,
            connector="ctf",
            source=name,
            status=RunStatus.FAILED,
            started_at=started,
            finished_at=started,
            error="ConnectionError: lost",
        )
        session.add(run)
        session.flush()
        files.keep(session, run, name, b"<CTfile/>")
        session.commit()
        return run.id


def upload(session: Session, school: Organisation, *, hours_ago: float, name: str) -> int:
    with tenancy.tenant_context(school.id):
        kept = files.keep_upload(
            session, school.id, kind="marks", filename=name, content=b"UPN\n", user_id=None
        )
        session.execute(
            update(CsvUpload)
            .where(CsvUpload.id == kept.id)
            .values(created_at=utcnow() - dt.timedelta(hours=hours_ago))
        )
        session.commit()
        return kept.id


def left(session: Session, school: Organisation) -> tuple[set[str], set[str]]:
    with tenancy.tenant_context(school.id):
        return (
            set(session.scalars(select(SyncRunFile.filename).where(SyncRunFile.org_id == school.id))),
            set(session.scalars(select(CsvUpload.filename).where(CsvUpload.org_id == school.id))),
        )


def purged(session: Session, school: Organisation) -> list[tuple[str, str | None, str]]:
    with tenancy.tenant_context(school.id):
        events = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.org_id == school.id, AuditEvent.action == "integrations.file_purged")
            .order_by(AuditEvent.seq)
        ).all()
        return [(e.object_type, e.object_id, json.loads(e.detail)["filename"]) for e in events]


def test_the_purge_deletes_only_files_past_their_retention_and_audits_each(
    app: Flask, db_session: Session, make_school: Callable[..., Organisation]
) -> None:
    first, second = make_school(), make_school()
    old_run = failed_run_with_file(db_session, first, days_ago=31, name="september.xml")
    failed_run_with_file(db_session, first, days_ago=29, name="october.xml")
    their_old_run = failed_run_with_file(db_session, second, days_ago=45, name="theirs.xml")
    stale = upload(db_session, first, hours_ago=25, name="left.csv")
    upload(db_session, first, hours_ago=23, name="being-mapped.csv")

    platform_jobs.enqueue(jobs.purge_files, org_id=None)
    db_session.commit()

    assert app.config["KEPT_FILE_DAYS"] == 30
    assert app.config["CSV_UPLOAD_HOURS"] == 24
    assert left(db_session, first) == ({"october.xml"}, {"being-mapped.csv"})
    assert left(db_session, second) == (set(), set())
    assert purged(db_session, first) == [
        ("sync_run", str(old_run), "september.xml"),
        ("csv_upload", str(stale), "left.csv"),
    ]
    assert purged(db_session, second) == [("sync_run", str(their_old_run), "theirs.xml")]
    with tenancy.tenant_context(first.id):
        assert db_session.get(SyncRun, old_run) is not None  # the run and its record stay
        assert list(audit.verify(db_session, [first.id])) == []


def test_a_file_moved_to_a_retry_that_failed_again_is_kept_from_that_retry(
    db_session: Session, make_school: Callable[..., Organisation]
) -> None:
    school = make_school()
    old_run = failed_run_with_file(db_session, school, days_ago=40, name="autumn.xml")
    with tenancy.tenant_context(school.id):
        retry = SyncRun(
            org_id=school.id, connector="ctf", source="retry", status=RunStatus.FAILED, started_at=utcnow()
        )
        db_session.add(retry)
        db_session.flush()
        kept = db_session.scalar(select(SyncRunFile).where(SyncRunFile.sync_run_id == old_run))
        assert kept is not None
        files.move(db_session, kept, retry)
        db_session.commit()

    with tenancy.system_context("test: purge"):
        files.purge(
            db_session,
            runs_before=utcnow() - dt.timedelta(days=30),
            uploads_before=utcnow() - dt.timedelta(days=1),
        )
        db_session.commit()

    assert left(db_session, school) == ({"autumn.xml"}, set())
    assert purged(db_session, school) == []


def test_the_purge_is_a_periodic_job() -> None:
    [purge] = [job for job in jobs.PERIODIC if job.name == "integrations.purge_files"]

    assert purge.func == "attendwise.integrations.jobs.purge_files"
    assert purge.interval == jobs.PURGE_EVERY
