"""Two members of staff viewing one school's pupils at once do not wait for each other.

A view of a pupil record is audited in the school's hash chain, and appending to the chain
takes the school's lock until the transaction ends. Appended when the view starts, that lock
would be held while the page renders, so every other view of the school's pupils queued
behind it (the load drill saw pupil pages time out). A read-only request now appends its
events just before it commits.

PostgreSQL only (it runs under CI=true): the embedded SQLite default begins every
transaction with ``BEGIN IMMEDIATE``, one writer at a time, and has no per-school lock. The
test runs its own app on a committed database: the rolled-back test transaction would hold
every lock taken while setting up.
Staff member A's page stops at its template until B's view of another pupil of the same school
has finished; if A held the lock, B could not finish and A would give up after the timeout.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, before_render_template
from flask.testing import FlaskClient
from sqlalchemy import select

from attendwise.attendance import services as attendance
from attendwise.platform import tenancy
from attendwise.platform.app import create_app
from attendwise.platform.audit import AuditEvent
from attendwise.platform.config import Settings
from attendwise.platform.db import db
from attendwise.tenants import services as tenants
from attendwise.tenants.models import OrgKind
from tests.attendance.records import HALF_TERMS_2026, pupil
from tests.conftest import (
    APP_ROLE,
    TEST_PASSWORD,
    USE_POSTGRES,
    create_pg_database,
    drop_pg_database,
    migrate,
    pg_url,
)

WAIT = 20.0
pytestmark = pytest.mark.skipif(
    not USE_POSTGRES, reason="the per-school chain lock exists only on PostgreSQL"
)


@pytest.fixture
def own_app(app: Flask, tmp_path: Path) -> Iterator[Flask]:
    saved = (db.engine, db.session_factory, db.session)
    name = f"attendwise_audit_views_{os.getpid()}"
    create_pg_database(name)
    owner, url = pg_url(name), pg_url(name, APP_ROLE)
    try:
        migrate(owner, tmp_path)
        yield create_app(
            config={"TESTING": True, "DATABASE_URL": url, "MIGRATION_DATABASE_URL": owner, "MAIL_SERVER": ""},
            settings=Settings.from_env({"ATTENDWISE_DATA_DIR": str(tmp_path)}),
        )
    finally:
        db.dispose()
        db.engine, db.session_factory, db.session = saved
        drop_pg_database(name)


def _seed(app: Flask) -> tuple[int, list[int], list[str]]:
    with app.app_context():
        session = db.session()
        with tenancy.system_context("test set-up"):
            la = tenants.create_organisation(session, kind=OrgKind.LA, name="LA 801", la_code="801")
            school = tenants.create_organisation(
                session, kind=OrgKind.SCHOOL, name="Views School", urn="100801", phase="Primary", la=la
            )
            emails = []
            for n in (1, 2):
                user = tenants.create_user(
                    session, email=f"staff{n}@example.test", display_name=f"Staff {n}", password=TEST_PASSWORD
                )
                tenants.add_membership(session, user=user, org=school, role_key="school_staff")
                emails.append(user.email)
        with tenancy.tenant_context(school.id):
            attendance.set_school_calendar(session, school.id, 2026, HALF_TERMS_2026)
            attendance.upsert_pupils(session, school.id, [pupil(1), pupil(2)])
        session.commit()
        with tenancy.tenant_context(school.id):
            ids = list(session.scalars(select(attendance.Pupil.id).order_by(attendance.Pupil.id)))
        return school.id, ids, emails


def _signed_in(app: Flask, email: str) -> FlaskClient:
    client = app.test_client()
    page = client.get("/auth/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    response = client.post(
        "/auth/login", data={"email": email, "password": TEST_PASSWORD, "csrf_token": token.group(1)}
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return client


def test_a_pupil_page_being_rendered_does_not_hold_up_another_view_of_the_same_school(own_app):
    school_id, (first, second), (email_a, email_b) = _seed(own_app)
    staff_a, staff_b = _signed_in(own_app, email_a), _signed_in(own_app, email_b)
    a_rendering, b_done = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def hold_a_at_its_template(_sender: Flask, **_extra: Any) -> None:
        if threading.current_thread().name == "staff-a" and not a_rendering.is_set():
            a_rendering.set()
            outcome["b finished while a rendered"] = b_done.wait(WAIT)

    def view_as_a() -> None:
        outcome["a"] = staff_a.get(f"/pupils/{first}").status_code

    before_render_template.connect(hold_a_at_its_template, own_app)
    try:
        thread = threading.Thread(target=view_as_a, name="staff-a")
        thread.start()
        assert a_rendering.wait(WAIT), "staff member A's page never reached its template"
        outcome["b"] = staff_b.get(f"/pupils/{second}").status_code
        b_done.set()
        thread.join(WAIT * 2)
    finally:
        before_render_template.disconnect(hold_a_at_its_template, own_app)

    assert outcome == {"a": 200, "b": 200, "b finished while a rendered": True}
    with own_app.app_context(), tenancy.tenant_context(school_id):
        views = db.session().execute(
            select(AuditEvent.pupil_id, AuditEvent.actor_label, AuditEvent.seq)
            .where(AuditEvent.action == "pupil.view")
            .order_by(AuditEvent.seq)
        )
        assert [(row.pupil_id, row.actor_label) for row in views] == [
            (second, "staff2@example.test"),
            (first, "staff1@example.test"),
        ]
