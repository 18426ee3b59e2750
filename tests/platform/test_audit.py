"""The audit log: written in the same transaction as the change, hash-chained per organisation,
and ``attendwise audit verify`` catches a row changed behind the application's back."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DBAPIError

from attendwise.platform import audit, tenancy
from attendwise.platform.cli import alembic_config
from attendwise.platform.db import AttendwiseSession, make_engine, utcnow
from attendwise.tenants import services
from attendwise.tenants.models import Invitation, OrgKind
from tests.conftest import APP_ROLE, USE_POSTGRES, create_pg_database, drop_pg_database, pg_url
from tests.platform.test_migrations import ATTENDWISE


def _invitation(email: str) -> Invitation:
    return Invitation(
        email=email,
        role="school_staff",
        token_hash=email.ljust(64, "x")[:64],
        expires_at=utcnow() + dt.timedelta(days=7),
    )


def _events(session, org_id: int) -> list[audit.AuditEvent]:
    with tenancy.system_context("test: read the audit log"):
        return list(
            session.scalars(select(audit.AuditEvent).where(audit.AuditEvent.org_id == org_id).order_by("seq"))
        )


def test_create_update_and_delete_are_audited_with_who_and_what(db_session, make_school):
    school = make_school()
    audit.set_actor(
        audit.Actor(user_id=None, label="officer@example.test", ip="127.0.0.9", request_id="req-1")
    )
    try:
        with tenancy.tenant_context(school.id):
            invitation = _invitation("new.teacher@example.test")
            db_session.add(invitation)
            db_session.flush()
            invitation.role = "attendance_officer"
            db_session.flush()
            db_session.delete(invitation)
            db_session.flush()
    finally:
        audit.set_actor(audit.Actor())
    events = _events(db_session, school.id)
    assert [(e.seq, e.action, e.object_type, e.object_id) for e in events] == [
        (1, "create", "invitations", str(invitation.id)),
        (2, "update", "invitations", str(invitation.id)),
        (3, "delete", "invitations", str(invitation.id)),
    ]
    assert json.loads(events[0].detail)["email"] == "new.teacher@example.test"
    assert json.loads(events[1].detail) == {"role": "attendance_officer"}
    assert {(e.actor_label, e.ip, e.request_id) for e in events} == {
        ("officer@example.test", "127.0.0.9", "req-1")
    }


def test_the_event_is_rolled_back_with_the_change(db_session, make_school):
    school = make_school()
    with tenancy.tenant_context(school.id):
        db_session.add(_invitation("kept@example.test"))
        db_session.flush()
        savepoint = db_session.begin_nested()
        db_session.add(_invitation("dropped@example.test"))
        db_session.flush()
        assert len(_events(db_session, school.id)) == 2
        savepoint.rollback()
    events = _events(db_session, school.id)
    assert [json.loads(e.detail)["email"] for e in events] == ["kept@example.test"]


def test_each_organisation_has_its_own_chain_and_it_verifies(db_session, make_school):
    a, b = make_school(), make_school()
    for org, count in ((a, 3), (b, 2)):
        with tenancy.tenant_context(org.id):
            for i in range(count):
                db_session.add(_invitation(f"p{i}.{org.id}@example.test"))
                db_session.flush()
    events_a, events_b = _events(db_session, a.id), _events(db_session, b.id)
    assert [e.seq for e in events_a] == [1, 2, 3]
    assert [e.seq for e in events_b] == [1, 2]
    assert events_a[0].prev_hash == audit.GENESIS
    assert [e.prev_hash for e in events_a[1:]] == [e.row_hash for e in events_a[:-1]]
    with tenancy.system_context("test: verify"):
        assert list(audit.verify(db_session, [a.id, b.id])) == []


def test_an_explicit_view_event_needs_a_context_that_can_read_the_organisation(db_session, make_school):
    a, b = make_school(), make_school()
    with tenancy.tenant_context(a.id), pytest.raises(tenancy.TenantViolation):
        audit.record(db_session, org_id=b.id, action="pupil.view", object_type="pupil", object_id=7)
    with pytest.raises(tenancy.TenantContextMissing):
        audit.record(db_session, org_id=a.id, action="pupil.view", object_type="pupil", object_id=7)
    with tenancy.tenant_context(a.id):
        audit.record(
            db_session, org_id=a.id, action="pupil.view", object_type="pupil", object_id=7, pupil_id=7
        )
    assert [(e.action, e.pupil_id) for e in _events(db_session, a.id)] == [("pupil.view", 7)]


# ---- attendwise audit verify, through the real command, on a scratch database ---------------


@pytest.fixture
def scratch(app, tmp_path) -> Iterator[dict[str, str]]:
    """A migrated scratch database: owner URL (to tamper with) and the application's URL."""
    if USE_POSTGRES:
        name = f"aw_audit_{os.getpid()}_{os.environ.get('PYTEST_XDIST_WORKER', 'gw0')}"
        create_pg_database(name)
        urls = {"owner": pg_url(name), "app": pg_url(name, APP_ROLE)}
    else:
        name = ""
        url = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
        urls = {"owner": url, "app": url}
    with app.app_context():
        command.upgrade(alembic_config(urls["owner"]), "head")
    yield urls
    if name:
        drop_pg_database(name)


def _populate(url: str) -> int:
    """As the application would: a school, invitations created, changed and deleted."""
    engine = make_engine(url)
    session = AttendwiseSession(bind=engine, expire_on_commit=False)
    with tenancy.system_context("test: onboard a school"):
        la = services.create_organisation(session, kind=OrgKind.LA, name="Audit LA", la_code="835")
        school = services.create_organisation(
            session, kind=OrgKind.SCHOOL, name="Audit School", urn="113470", la=la
        )
    with tenancy.tenant_context(school.id):
        invitations = [_invitation(f"staff{i}@example.test") for i in range(3)]
        session.add_all(invitations)
        session.flush()
        invitations[0].role = "school_admin"
        session.delete(invitations[1])
        session.commit()
    session.close()
    engine.dispose()
    return school.id


def _verify(url: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ATTENDWISE_DATABASE_URL": url, "ATTENDWISE_DATA_DIR": str(data_dir)}
    return subprocess.run(  # noqa: PLW1510 - the caller asserts on returncode
        [ATTENDWISE, "audit", "verify"], env=env, capture_output=True, text=True, timeout=180
    )


def _tamper(owner_url: str, org_id: int) -> int:
    """Change event 2's action as the table owner (the app role cannot); return the event's id."""
    if owner_url.startswith("sqlite"):
        conn = sqlite3.connect(owner_url.removeprefix("sqlite:///"))
        with conn:
            event_id = conn.execute(
                "SELECT id FROM audit_events WHERE org_id = ? AND seq = 2", (org_id,)
            ).fetchone()[0]
            conn.execute("UPDATE audit_events SET action = 'tampered' WHERE id = ?", (event_id,))
        conn.close()
        return int(event_id)
    engine = create_engine(owner_url)
    with engine.connect() as conn:
        event_id = conn.scalar(
            text("SELECT id FROM audit_events WHERE org_id = :o AND seq = 2"), {"o": org_id}
        )
        conn.rollback()
        with pytest.raises(DBAPIError, match="append-only"), conn.begin():
            conn.execute(text("UPDATE audit_events SET action = 'tampered' WHERE id = :i"), {"i": event_id})
        with conn.begin():
            conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
            conn.execute(text("UPDATE audit_events SET action = 'tampered' WHERE id = :i"), {"i": event_id})
            conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only"))
    engine.dispose()
    return int(event_id)


def test_audit_verify_detects_a_row_changed_behind_the_applications_back(scratch, tmp_path):
    org_id = _populate(scratch["app"])
    intact = _verify(scratch["app"], tmp_path)
    assert (intact.returncode, intact.stdout.strip()) == (0, "audit chain intact"), intact.stderr
    event_id = _tamper(scratch["owner"], org_id)
    broken = _verify(scratch["app"], tmp_path)
    assert broken.returncode == 1
    assert broken.stderr.strip().splitlines() == [
        f"organisation {org_id}, event 2 (id {event_id}): row content does not match its hash"
    ]
